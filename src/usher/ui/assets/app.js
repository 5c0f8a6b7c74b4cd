// usher's web console (docs/ui.md): sign-in with an API token, account
// creation for sales managers and admins, System Health for admins.
//
// Rules this file keeps:
// - every value from the server or the user is put on the page as text
//   (textContent, createTextNode, element properties), never as markup;
// - the token lives in sessionStorage (this tab only) and in memory; it is
//   sent only in the Authorization header, never in a URL, and Sign out
//   forgets it;
// - no inline script or style anywhere (the Content-Security-Policy forbids it).

const TOKEN_KEY = 'usher.token';
const RECENT_KEY = 'usher.recent';
const POLL_MS = { logs: 1000, overview: 2000, dead: 3000, jobs: 1000 };

const $ = (id) => document.getElementById(id);

// ---------- small DOM helpers (text only) ----------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setFacts(dl, facts) {
  dl.replaceChildren();
  for (const [term, value] of facts) {
    dl.append(el('div', { className: 'fact' }, el('dt', { text: term }),
      value instanceof Node ? el('dd', {}, value) : el('dd', { text: value ?? '—' })));
  }
}

function showBanner(node, text, kind = 'info') {
  if (!text) { node.hidden = true; node.textContent = ''; return; }
  node.textContent = text;
  node.className = `banner ${kind}`;
  node.hidden = false;
}

function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

function formatAge(seconds) {
  if (seconds === null || seconds === undefined) return 'none waiting';
  if (seconds < 1) return 'under 1 s';
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

function timeEl(iso) {
  return el('time', { datetime: iso, title: iso, text: formatTime(iso) });
}

function statusBadge(status) {
  return el('span', { className: `badge status-${status}`, text: status });
}

// An Idempotency-Key: crypto.randomUUID where the page is a secure context
// (localhost, HTTPS), else a v4 UUID from getRandomValues.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

const session = {
  token: null,
  me: null, // {name, role, token_id}
};

async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, cache: 'no-store' };
  if (session.token) init.headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init); // a network failure throws TypeError
  let data = null;
  const type = response.headers.get('Content-Type') || '';
  if (type.includes('json')) data = await response.json().catch(() => null);
  if (response.status === 401 && session.token) {
    signOut('Your token is no longer accepted. Sign in again.');
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data };
}

// ---------- timers ----------

const timers = new Map();

function every(name, ms, fn) {
  stop(name);
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try { await fn(); } catch (e) { if (!(e instanceof ApiError)) console.warn(name, e); }
    finally { running = false; }
  };
  tick();
  timers.set(name, setInterval(tick, ms));
}

function stop(name) {
  if (timers.has(name)) { clearInterval(timers.get(name)); timers.delete(name); }
}

function stopAll() { for (const name of [...timers.keys()]) stop(name); }

// ---------- sign-in and navigation ----------

const views = ['signin-view', 'create-view', 'health-view', 'forbidden-view'];

function showView(id) {
  for (const view of views) $(view).hidden = view !== id;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.getAttribute('href') === `#${id.replace('-view', '')}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function signIn(token) {
  session.token = token;
  try {
    const { data } = await api('/api/v1/whoami');
    session.me = data;
    sessionStorage.setItem(TOKEN_KEY, token);
    return true;
  } catch (e) {
    session.token = null;
    session.me = null;
    throw e;
  }
}

function signOut(message) {
  session.token = null;
  session.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(RECENT_KEY);
  stopAll();
  resetCreate();
  resetHealth();
  $('nav').hidden = true;
  $('session').hidden = true;
  $('who').textContent = '';
  $('signin-token').value = '';
  $('signin-error').textContent = message || '';
  if (location.hash) history.replaceState(null, '', location.pathname);
  showView('signin-view');
  $('signin-token').focus();
}

function isAdmin() { return session.me?.role === 'admin'; }

function route() {
  if (!session.me) { showView('signin-view'); return; }
  stopAll();
  const hash = location.hash.replace('#', '');
  const wanted = ['health', 'create'].includes(hash) ? hash : (isAdmin() ? 'health' : 'create');
  if (wanted === 'health') {
    if (!isAdmin()) { showView('forbidden-view'); return; }
    showView('health-view');
    startHealth();
  } else {
    showView('create-view');
    startCreate();
  }
}

function afterSignIn() {
  $('nav').hidden = false;
  $('nav-health').hidden = !isAdmin();
  $('session').hidden = false;
  $('who').textContent = `${session.me.name} · ${session.me.role === 'admin' ? 'admin' : 'sales manager'}`;
  route();
  $('main').focus();
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = $('signin-token').value.trim();
  const error = $('signin-error');
  if (!token) { error.textContent = 'Enter an API token.'; return; }
  error.textContent = '';
  try {
    await signIn(token);
    $('signin-token').value = '';
    afterSignIn();
  } catch (e) {
    error.textContent = e instanceof ApiError && e.status === 401
      ? 'That token is not valid (unknown or revoked).'
      : 'usher did not answer. Check the connection and try again.';
    $('signin-token').focus();
  }
});

$('sign-out').addEventListener('click', () => signOut());
// Only the screens' own addresses route; any other fragment changes nothing.
window.addEventListener('hashchange', () => {
  if (['', '#health', '#create'].includes(location.hash)) route();
});
document.querySelector('.skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  $('main').focus();
});

// ---------- Create account ----------

const FIELDS = ['email', 'full_name', 'phone', 'product'];
const create = {
  key: null,      // the Idempotency-Key of the submission being made or retried
  shown: null,    // the job whose result is on show
  busy: false,
  recent: [],     // [{id, email, status, updated_at}]
};

function fieldInput(name) { return $(`create-${name}`); }

function clearFieldErrors() {
  for (const name of FIELDS) {
    $(`create-${name}-error`).textContent = '';
    fieldInput(name).removeAttribute('aria-invalid');
  }
}

function sentence(text) {
  const s = String(text || '');
  return s ? `${s.charAt(0).toUpperCase()}${s.slice(1)}${/[.!?]$/.test(s) ? '' : '.'}` : s;
}

function setFieldError(name, text) {
  const input = fieldInput(name);
  if (!input) return false;
  $(`create-${name}-error`).textContent = sentence(text);
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  return true;
}

function createBody() {
  const body = {};
  for (const name of FIELDS) {
    const value = fieldInput(name).value;
    if (name === 'email' || name === 'full_name' || value.trim() !== '') body[name] = value;
  }
  return body;
}

function problemText(e) {
  const p = e.problem || {};
  if (p.code === 'user_exists') {
    return 'This buyer already has an account or a pending request. Nothing new was created.';
  }
  if (e.status === 403) return 'Your token may not create accounts.';
  if (e.status === 503) return 'usher is busy or its database is unavailable. Try again in a moment.';
  return p.detail || `The request failed (HTTP ${e.status}).`;
}

async function submitCreate() {
  if (create.busy) return; // a double click sends nothing twice
  clearFieldErrors();
  showBanner($('create-status'), '');
  create.key ??= newKey();
  create.busy = true;
  $('create-submit').disabled = true;
  $('create-submit').setAttribute('aria-busy', 'true');
  try {
    const body = createBody();
    const { data } = await api('/api/v1/users', {
      method: 'POST', body, headers: { 'Idempotency-Key': create.key },
    });
    create.key = null;
    showResult(data, body);
  } catch (e) {
    if (!(e instanceof ApiError)) {
      // The request may or may not have arrived: a retry sends the same key,
      // so usher replays the first answer instead of creating a second account.
      showBanner($('create-status'),
        'usher did not answer. Press Create account again to retry safely: the same request is sent, never a second one.',
        'error');
      return;
    }
    if (e.problem.code !== 'idempotency_key_in_flight') create.key = null;
    const text = problemText(e);
    if (e.problem.code === 'user_exists') {
      setFieldError('email', 'Already has an account or a pending request.');
      showBanner($('create-status'), text, 'error');
    } else if (e.problem.field && setFieldError(e.problem.field, e.problem.detail || text)) {
      showBanner($('create-status'), 'usher refused the request: see the field marked in red.', 'error');
    } else {
      showBanner($('create-status'), text, 'error');
    }
  } finally {
    create.busy = false;
    $('create-submit').disabled = false;
    $('create-submit').removeAttribute('aria-busy');
  }
}

function showResult(data, body) {
  $('create-form').hidden = true;
  $('create-result').hidden = false;
  $('create-result-title').textContent = data.status === 'created'
    ? 'Account created' : 'Request queued';
  create.shown = data.job_id;
  setFacts($('create-result-facts'), [
    ['Status', el('span', { id: 'create-result-status' }, statusBadge(data.status))],
    ['Email', data.email],
    ['Full name', body.full_name.trim()],
    ['Job', data.job_id !== undefined ? String(data.job_id) : '—'],
    ['Mode', data.fallback ? `${data.mode} (fallback: provisioned inline)` : data.mode],
  ]);
  const token = data.activation_token;
  $('create-token-box').hidden = !token;
  $('create-token').value = token || '';
  $('create-copy-status').textContent = '';
  if (!token) {
    $('create-result-facts').append(el('div', { className: 'fact' }, el('dt', { text: 'Activation token' }),
      el('dd', { text: 'already shown for this request (a repeat shows it once only)' })));
  }
  if (data.job_id !== undefined) addRecent({ id: data.job_id, email: data.email,
    status: data.status === 'created' ? 'succeeded' : 'queued', updated_at: new Date().toISOString() });
  $('create-result-title').setAttribute('tabindex', '-1');
  $('create-result-title').focus();
}

function resetCreateForm() {
  $('create-form').reset();
  $('create-form').hidden = false;
  $('create-result').hidden = true;
  $('create-token').value = '';
  clearFieldErrors();
  showBanner($('create-status'), '');
  create.key = null;
}

function resetCreate() {
  resetCreateForm();
  resetResend();
  create.recent = [];
  renderRecent();
}

$('create-form').addEventListener('submit', (event) => { event.preventDefault(); submitCreate(); });
$('create-form').addEventListener('input', (event) => {
  // Another body needs another key (the same key with a new body is refused).
  create.key = null;
  const name = event.target.name;
  if (FIELDS.includes(name)) {
    $(`create-${name}-error`).textContent = '';
    event.target.removeAttribute('aria-invalid');
  }
});
$('create-another').addEventListener('click', () => { resetCreateForm(); fieldInput('email').focus(); });
$('create-copy').addEventListener('click', async () => {
  const input = $('create-token');
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand('copy');
  }
  $('create-copy-status').textContent = 'Copied.';
});

// ---------- Resend activation ----------

const resend = { busy: false };

function resetResend() {
  $('resend-form').reset();
  $('resend-customer-error').textContent = '';
  $('resend-customer').removeAttribute('aria-invalid');
  showBanner($('resend-status'), '');
  $('resend-result').hidden = true;
  $('resend-token').value = '';
}

function resendFieldError(text) {
  $('resend-customer-error').textContent = sentence(text);
  $('resend-customer').setAttribute('aria-invalid', 'true');
  $('resend-customer').focus();
}

// Finds the account by email, then asks for a new token (SPEC §3 resend).
async function submitResend() {
  if (resend.busy) return; // a double click issues one token, not two
  const email = $('resend-customer').value.trim();
  resetResend();
  $('resend-customer').value = email;
  if (!email) { resendFieldError("enter the buyer's email"); return; }
  resend.busy = true;
  $('resend-submit').disabled = true;
  $('resend-submit').setAttribute('aria-busy', 'true');
  try {
    const found = await api(`/api/v1/users?${new URLSearchParams({ email })}`);
    if (found.data.invitation === 'activated') {
      showBanner($('resend-status'),
        `${found.data.email} is already activated: the buyer signs in with their password.`, 'info');
      return;
    }
    const { data } = await api(`/api/v1/users/${found.data.id}/activation`, { method: 'POST' });
    setFacts($('resend-facts'), [
      ['Account', `${data.email} (id ${data.user_id})`],
      ['Valid until', formatTime(data.activation_expires_at)],
      ['Earlier tokens', 'no longer work'],
    ]);
    $('resend-token').value = data.activation_token;
    $('resend-result').hidden = false;
    showBanner($('resend-status'), 'New activation token issued.', 'ok');
  } catch (e) {
    if (!(e instanceof ApiError)) {
      showBanner($('resend-status'), 'usher did not answer. Check the connection and try again.', 'error');
    } else if (e.problem.code === 'user_not_found') {
      resendFieldError('no account with this email (a request still queued has none yet: use the token shown when it was made)');
    } else if (e.problem.field === 'email') {
      resendFieldError(e.problem.detail);
    } else if (e.problem.code === 'already_activated') {
      showBanner($('resend-status'), 'The buyer activated the account meanwhile: no token is needed.', 'info');
    } else {
      showBanner($('resend-status'), problemText(e), 'error');
    }
  } finally {
    resend.busy = false;
    $('resend-submit').disabled = false;
    $('resend-submit').removeAttribute('aria-busy');
  }
}

$('resend-form').addEventListener('submit', (event) => { event.preventDefault(); submitResend(); });

function loadRecent() {
  try { create.recent = JSON.parse(sessionStorage.getItem(RECENT_KEY) || '[]'); }
  catch { create.recent = []; }
}

function saveRecent() {
  sessionStorage.setItem(RECENT_KEY, JSON.stringify(create.recent.slice(0, 20)));
}

function addRecent(job) {
  create.recent = [job, ...create.recent.filter((j) => j.id !== job.id)].slice(0, 20);
  saveRecent();
  renderRecent();
}

function renderRecent() {
  // The result on show follows its job too (queued -> succeeded).
  const shown = create.recent.find((j) => j.id === create.shown);
  if (shown && $('create-result-status') && !$('create-result').hidden) {
    $('create-result-status').replaceChildren(statusBadge(shown.status));
  }
  const body = $('recent-body');
  body.replaceChildren();
  for (const job of create.recent) {
    body.append(el('tr', { 'data-job': job.id },
      el('td', { 'data-label': 'Job', text: job.id }),
      el('td', { className: 'email', text: job.email }),
      el('td', {}, statusBadge(job.status)),
      el('td', { className: 'nowrap' }, timeEl(job.updated_at))));
  }
  $('recent-table').hidden = create.recent.length === 0;
  $('recent-empty').hidden = create.recent.length !== 0;
}

async function pollRecent() {
  const open = create.recent.filter((j) => j.status === 'queued' || j.status === 'running');
  let changed = false;
  for (const job of open) {
    try {
      const { data } = await api(`/api/v1/jobs/${encodeURIComponent(job.id)}`);
      if (data.status !== job.status || data.updated_at !== job.updated_at) {
        Object.assign(job, { status: data.status, updated_at: data.updated_at });
        changed = true;
      }
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 403)) {
        job.status = 'unknown';
        changed = true;
      }
    }
  }
  if (changed) { saveRecent(); renderRecent(); }
}

function startCreate() {
  loadRecent();
  renderRecent();
  every('recent', POLL_MS.jobs, pollRecent);
}

// ---------- System Health ----------

const health = {
  mode: null,          // the last GET/PUT answer
  lastSwitch: null,    // the newest SWITCH event
  events: new Map(),   // id -> event
  rows: new Map(),     // id -> <tr>
  olderFrom: null,     // next_before_id of the oldest page loaded
  olderLoaded: false,  // the user paged back at least once
  type: '',
};

function resetHealth() {
  health.mode = null;
  health.lastSwitch = null;
  health.events.clear();
  health.rows.clear();
  health.olderFrom = null;
  health.olderLoaded = false;
  $('log-body').replaceChildren();
  $('dead-body').replaceChildren();
  $('timeline-card').hidden = true;
  health.timelineQuery = null;
  $('timeline-list').replaceChildren();
  $('find-input').value = '';
  $('find-error').textContent = '';
  showBanner($('mode-status'), '');
  showBanner($('dead-status'), '');
  if ($('switch-dialog').open) $('switch-dialog').close();
}

function otherMode(mode) { return mode === 'async_queue' ? 'sync_direct' : 'async_queue'; }

function renderMode() {
  const m = health.mode;
  if (!m) return;
  $('mode-name').textContent = m.mode;
  const effective = $('mode-effective');
  effective.textContent = m.effective_mode === m.mode ? 'in effect' : `effective: ${m.effective_mode}`;
  effective.className = `pill ${m.effective_mode === m.mode ? 'ok' : 'warn'}`;
  const sw = health.lastSwitch;
  const reason = sw && sw.metadata && sw.metadata.to === m.mode ? sw.metadata.reason : null;
  setFacts($('mode-facts'), [
    ['Effective mode', m.effective_mode],
    ['Changed by', m.updated_by],
    ['Changed at', timeEl(m.updated_at)],
    ['Reason', reason || '—'],
    ['Version', String(m.version)],
  ]);
  $('switch-mode').textContent = 'Switch mode';
}

function renderQueue(q) {
  const queue = q.queue || {};
  const healthy = el('span', { className: `pill ${queue.healthy ? 'ok' : 'bad'}`,
    text: queue.healthy ? 'healthy' : 'unhealthy' });
  setFacts($('queue-facts'), [
    ['Backend', queue.backend],
    ['Health', healthy],
    ['Circuit', queue.circuit],
    ['Oldest waiting', formatAge(q.oldest_waiting_seconds)],
    ['Throughput', `${(q.jobs_per_second_last_minute || 0).toFixed(2)} jobs/s (last minute)`],
  ]);
  const counts = $('queue-counts');
  counts.replaceChildren();
  for (const state of ['queued', 'running', 'succeeded', 'dead']) {
    counts.append(el('li', { className: `count status-${state}` },
      el('span', { className: 'count-value', text: String(q.counts?.[state] ?? 0) }),
      el('span', { className: 'count-label', text: state })));
  }
}

async function refreshOverview() {
  let mode, queue, switches;
  try {
    [mode, queue, switches] = await Promise.all([
      api('/api/v1/admin/system/mode'),
      api('/api/v1/admin/queue'),
      api('/api/v1/admin/health/logs?type=SWITCH&limit=1'),
    ]);
  } catch (e) {
    // What is shown is going stale: say so (a database outage answers 503).
    const updated = $('health-updated');
    updated.textContent = e instanceof ApiError
      ? `Not updated: usher answered ${e.status} (${e.problem.code || 'error'}); retrying`
      : 'Not updated: usher is not answering; retrying';
    updated.classList.add('stale');
    throw e;
  }
  $('health-updated').classList.remove('stale');
  health.mode = mode.data;
  health.lastSwitch = switches.data.events[0] || null;
  renderMode();
  renderQueue(queue.data);
  $('health-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

// One health log row; updated in place when its count grows.
function logRow(event) {
  const details = el('details', {},
    el('summary', { text: 'Details' }),
    el('pre', { text: JSON.stringify({ instance: event.instance, ...event.metadata }, null, 2) }));
  return el('tr', { 'data-id': event.id, className: `type-${event.type}` },
    el('td', { className: 'nowrap' }, timeEl(event.created_at)),
    el('td', {}, el('span', { className: `badge type-${event.type}`, text: event.type })),
    el('td', { className: 'wrap' }, event.message,
      event.metadata?.reason ? el('span', { className: 'reason', text: `Reason: ${event.metadata.reason}` }) : null),
    el('td', { className: 'num', 'data-label': 'Count', text: String(event.count) }),
    el('td', { className: 'nowrap' }, details));
}

function upsertEvents(events) {
  const body = $('log-body');
  for (const event of events) {
    const known = health.events.get(event.id);
    health.events.set(event.id, event);
    if (known && health.rows.has(event.id)) {
      if (known.count !== event.count) {
        health.rows.get(event.id).querySelector('td.num').textContent = String(event.count);
      }
      continue;
    }
    const row = logRow(event);
    health.rows.set(event.id, row);
    // Keep newest first: insert before the first row with a smaller id.
    const next = [...body.children].find((r) => Number(r.dataset.id) < event.id);
    body.insertBefore(row, next || null);
  }
  $('log-empty').hidden = health.rows.size !== 0;
}

function logQuery(extra = {}) {
  const params = new URLSearchParams({ limit: '50', ...extra });
  if (health.type) params.set('type', health.type);
  return `/api/v1/admin/health/logs?${params}`;
}

async function refreshLogs() {
  const type = health.type;
  const { data } = await api(logQuery());
  if (type !== health.type) return; // the filter changed meanwhile
  upsertEvents(data.events);
  if (!health.olderLoaded) health.olderFrom = data.next_before_id;
  $('log-older').hidden = !health.olderFrom;
}

async function loadOlder() {
  if (!health.olderFrom) return;
  const { data } = await api(logQuery({ before_id: String(health.olderFrom) }));
  health.olderLoaded = true;
  upsertEvents(data.events);
  health.olderFrom = data.next_before_id;
  $('log-older').hidden = !health.olderFrom;
}

function changeLogType() {
  health.type = $('log-type').value;
  health.events.clear();
  health.rows.clear();
  health.olderFrom = null;
  health.olderLoaded = false;
  $('log-body').replaceChildren();
  refreshLogs().catch(() => {});
}

async function refreshDead() {
  const { data } = await api('/api/v1/admin/jobs?status=dead&limit=50');
  const body = $('dead-body');
  body.replaceChildren();
  for (const job of data.jobs) {
    body.append(el('tr', { 'data-job': job.id },
      el('td', { 'data-label': 'Job', text: job.id }),
      el('td', { className: 'wrap', text: job.email }),
      el('td', { className: 'num', 'data-label': 'Attempts', text: String(job.attempts) }),
      el('td', { className: 'wrap error-text', text: job.last_error || '—' }),
      el('td', { className: 'row-actions' },
        el('button', { type: 'button', className: 'primary small-button', text: 'Retry',
          'aria-describedby': `dead-email-${job.id}`, onclick: () => retryJob(job) }),
        el('button', { type: 'button', className: 'secondary small-button', text: 'Timeline',
          onclick: () => openTimeline(String(job.id)) }),
        el('span', { id: `dead-email-${job.id}`, className: 'visually-hidden', text: `job ${job.id} for ${job.email}` }))));
  }
  $('dead-table').hidden = data.jobs.length === 0;
  $('dead-empty').hidden = data.jobs.length !== 0;
}

async function retryJob(job) {
  try {
    await api(`/api/v1/admin/jobs/${encodeURIComponent(job.id)}/retry`, { method: 'POST' });
    showBanner($('dead-status'), `Job ${job.id} for ${job.email} was queued again.`, 'ok');
  } catch (e) {
    showBanner($('dead-status'), e instanceof ApiError ? problemText(e)
      : 'usher did not answer; the job was not retried.', 'error');
  }
  await Promise.allSettled([refreshDead(), refreshOverview(), refreshLogs()]);
}

// The switch dialog: the new mode, a reason, then Confirm.
function openSwitch() {
  if (!health.mode) return;
  const to = otherMode(health.mode.mode);
  $('switch-summary').textContent = `From ${health.mode.mode} to ${to}. Every instance follows within 2 seconds.`;
  $('switch-reason').value = '';
  $('switch-error').textContent = '';
  $('switch-dialog').dataset.to = to;
  $('switch-dialog').showModal();
  $('switch-reason').focus();
}

async function confirmSwitch(event) {
  event.preventDefault();
  const reason = $('switch-reason').value.trim();
  if (!reason) { $('switch-error').textContent = 'Say why: the reason goes into the SWITCH event and the alert.'; $('switch-reason').focus(); return; }
  const to = $('switch-dialog').dataset.to;
  $('switch-confirm').disabled = true;
  try {
    const { data } = await api('/api/v1/admin/system/mode', { method: 'PUT', body: { mode: to, reason } });
    health.mode = data;
    health.lastSwitch = { metadata: { to: data.mode, reason } };
    renderMode();
    $('switch-dialog').close();
    showBanner($('mode-status'), `Mode is now ${data.mode}.`, 'ok');
    $('switch-mode').focus();
    refreshLogs().catch(() => {});
  } catch (e) {
    $('switch-error').textContent = e instanceof ApiError ? problemText(e) : 'usher did not answer; the mode did not change.';
  } finally {
    $('switch-confirm').disabled = false;
  }
}

// ---------- the timeline ----------

function describeEntry(entry) {
  switch (entry.kind) {
    case 'request': {
      const parts = [`Requested by ${entry.by || 'unknown'}`, `mode ${entry.mode}`];
      if (entry.fallback) parts.push('fallback: the queue was down');
      if (entry.provisioned_inline) parts.push('provisioned inline');
      parts.push(entry.idempotency_key ? 'with an Idempotency-Key' : 'without an Idempotency-Key');
      return { title: 'Request', text: parts.join(' · ') };
    }
    case 'attempt': {
      const text = `${entry.outcome} after ${entry.duration_ms} ms on ${entry.worker}`;
      return { title: `Attempt ${entry.number}`, text, error: entry.error };
    }
    case 'event':
      return { title: `${entry.type} event${entry.count > 1 ? ` ×${entry.count}` : ''}`, text: entry.message,
        details: entry.details };
    case 'alert':
      return { title: 'Alert', text: `${entry.alert_kind} to chat ${entry.chat_id}: ${entry.delivered ? 'delivered' : entry.status}`
        + (entry.last_error ? ` (${entry.last_error})` : ''), details: { text: entry.text } };
    default:
      return { title: entry.kind, text: '' };
  }
}

// All attempts ever made; a retried job's own counter starts again at 0.
function attemptsText(job, entries) {
  const total = entries.filter((e) => e.kind === 'attempt').length;
  return total > job.attempts ? `${total} (${job.attempts} since the last retry)` : String(job.attempts);
}

function renderTimeline(data, { focus = true } = {}) {
  const job = data.job;
  $('timeline-title').textContent = `Timeline of job ${job.id}`;
  setFacts($('timeline-facts'), [
    ['Email', job.email],
    ['Status', statusBadge(job.status)],
    ['Attempts', attemptsText(job, data.entries)],
    ['Created by', job.created_by || '—'],
    ['Last error', job.last_error || '—'],
  ]);
  const list = $('timeline-list');
  list.replaceChildren();
  for (const entry of data.entries) {
    const d = describeEntry(entry);
    const item = el('li', { className: `entry kind-${entry.kind}${entry.outcome ? ` outcome-${entry.outcome}` : ''}${entry.type ? ` type-${entry.type}` : ''}` },
      el('div', { className: 'entry-head' },
        el('span', { className: 'entry-kind', text: d.title }),
        timeEl(entry.at)),
      el('p', { className: 'entry-text', text: d.text }));
    if (d.error) item.append(el('p', { className: 'entry-error', text: d.error }));
    if (d.details) {
      item.append(el('details', {}, el('summary', { text: 'Details' }),
        el('pre', { text: typeof d.details === 'object' && d.details.text && Object.keys(d.details).length === 1
          ? d.details.text : JSON.stringify(d.details, null, 2) })));
    }
    list.append(item);
  }
  $('timeline-card').hidden = false;
  if (focus) $('timeline-title').focus();
}

async function openTimeline(query, { focus = true } = {}) {
  const q = query.trim();
  health.timelineQuery = q;
  $('find-error').textContent = '';
  $('find-input').removeAttribute('aria-invalid');
  if (!q) { $('find-error').textContent = 'Enter an email or a job id.'; return; }
  const path = /^\d{1,18}$/.test(q)
    ? `/api/v1/admin/jobs/${q}/timeline`
    : `/api/v1/admin/timeline?${new URLSearchParams({ email: q })}`;
  try {
    const { data } = await api(path);
    renderTimeline(data, { focus });
    // While it is open the timeline follows the job (a retry, an alert sent).
    let shown = JSON.stringify(data);
    every('timeline', POLL_MS.overview, async () => {
      if ($('timeline-card').hidden) { stop('timeline'); return; }
      const next = await api(path);
      const text = JSON.stringify(next.data);
      if (text !== shown) { shown = text; renderTimeline(next.data, { focus: false }); }
    });
  } catch (e) {
    $('find-input').setAttribute('aria-invalid', 'true');
    $('find-error').textContent = !(e instanceof ApiError) ? 'usher did not answer.'
      : e.status === 404 ? `Nothing found for ${q}.` : (e.problem.detail || `HTTP ${e.status}`);
  }
}

function startHealth() {
  // Back on the screen with a timeline open: it follows its job again.
  if (!$('timeline-card').hidden && health.timelineQuery) {
    openTimeline(health.timelineQuery, { focus: false });
  }
  every('overview', POLL_MS.overview, refreshOverview);
  every('logs', POLL_MS.logs, refreshLogs);
  every('dead', POLL_MS.dead, refreshDead);
}

$('switch-mode').addEventListener('click', openSwitch);
$('switch-form').addEventListener('submit', confirmSwitch);
$('switch-reason').addEventListener('input', () => { $('switch-error').textContent = ''; });
$('switch-cancel').addEventListener('click', () => $('switch-dialog').close());
$('log-type').addEventListener('change', changeLogType);
$('log-older').addEventListener('click', () => loadOlder().catch(() => {}));
$('find-form').addEventListener('submit', (event) => { event.preventDefault(); openTimeline($('find-input').value); });
$('timeline-close').addEventListener('click', () => {
  stop('timeline');
  $('timeline-card').hidden = true;
  $('find-input').focus();
});

// ---------- start ----------

async function start() {
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    try {
      await signIn(saved);
      afterSignIn();
      return;
    } catch {
      sessionStorage.removeItem(TOKEN_KEY);
    }
  }
  showView('signin-view');
  $('signin-token').focus();
}

start();
