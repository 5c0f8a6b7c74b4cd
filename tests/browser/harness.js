// Shared helpers for usher's browser tests (docs/ui.md, "Browser tests").
//
// UsherServer: a temporary SQLite database and the real `usher serve` on a
// free port, tokens made with `usher token create`, as
// tests/integration/usher_harness.py does. FakeTelegram: a Bot API that
// accepts every message, so alerts are delivered and show in timelines.
// launchBrowser: Debian's /usr/bin/chromium driven by playwright-core; a
// missing Chromium is an error (the test fails), never a skip.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const USHER_BIN = path.resolve(process.env.USHER_BIN || path.join(ROOT, 'build', 'usher'));
export const CHROMIUM = process.env.USHER_CHROMIUM || '/usr/bin/chromium';
export const SCREENSHOTS = process.env.USHER_SCREENSHOTS || path.join(ROOT, 'docs', 'ui');

const START_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 15000;
const CLI_TIMEOUT_MS = 30000;

// Settings usher reads: never inherited from the developer's shell.
const SETTING_PATTERN = /^(USHER_|DATABASE_URL$|REDIS_|START_WORKER$|WORKER_CONCURRENCY$|JOB_|QUEUE_|CONFIG_CACHE_TTL_MS$|TELEGRAM_|ALERT_|LOG_FORMAT$|ACTIVATION_|PASSWORD_|IDEMPOTENCY_|SESSION_|HTTP_|DB_|BLOCKING_|WRITE_|WEBHOOK)/;

function baseEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!SETTING_PATTERN.test(k)) env[k] = v;
  return { ...env, PASSWORD_HASH_MEMORY_KIB: '1024', PASSWORD_HASH_ITERATIONS: '1', ...extra };
}

export function uniqueEmail(prefix) {
  return `${prefix}-${Math.random().toString(16).slice(2, 12)}@example.com`;
}

export async function waitUntil(what, fn, timeoutMs = 20000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export class UsherServer {
  constructor(name, env = {}) {
    if (!existsSync(USHER_BIN)) throw new Error(`usher binary not found at ${USHER_BIN}: build it first`);
    this.dir = mkdtempSync(path.join(tmpdir(), `usher-browser-${name}-`));
    this.env = baseEnv({
      DATABASE_URL: `sqlite:${path.join(this.dir, 'usher.db')}`,
      USHER_LISTEN: '127.0.0.1:0',
      USHER_INSTANCE: `browser-${name}`,
      JOB_BACKOFF_MS: '50',
      QUEUE_POLL_MS: '50',
      ALERT_POLL_MS: '100',
      ...env,
    });
    this.proc = null;
    this.port = null;
    this.cli(['migrate']);
  }

  cli(args, extraEnv = {}) {
    const result = spawnSync(USHER_BIN, args, {
      env: { ...this.env, ...extraEnv }, cwd: this.dir, encoding: 'utf8', timeout: CLI_TIMEOUT_MS,
    });
    if (result.status !== 0) {
      throw new Error(`usher ${args.join(' ')} failed (${result.error || result.status}): ${result.stderr}`);
    }
    return result.stdout;
  }

  createToken(role, name) {
    const lines = this.cli(['token', 'create', '--role', role, '--name', name])
      .split('\n').map((l) => l.trim()).filter(Boolean);
    return lines[lines.length - 1];
  }

  async start(extraEnv = {}) {
    const stdout = [];
    const stderr = [];
    this.proc = spawn(USHER_BIN, ['serve'], {
      env: { ...this.env, ...extraEnv }, cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout.on('data', (d) => stdout.push(d));
    this.proc.stderr.on('data', (d) => { stderr.push(d); });
    const prefix = 'usher listening on http://';
    await waitUntil('usher serve to print its URL', () => {
      if (this.proc.exitCode !== null) {
        throw new Error(`usher serve exited with ${this.proc.exitCode}: ${Buffer.concat(stderr)}`);
      }
      const first = Buffer.concat(stdout).toString('utf8').split('\n')[0];
      if (Buffer.concat(stdout).includes('\n') && first.startsWith(prefix)) {
        this.port = Number(first.trim().split(':').pop());
        return true;
      }
      return false;
    }, START_TIMEOUT_MS, 20);
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async request(method, urlPath, { token, body, headers = {} } = {}) {
    const init = { method, headers: { ...headers } };
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`${this.url}${urlPath}`, init);
    const text = await response.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: response.status, headers: response.headers, json, text };
  }

  async waitForJob(id, status, token) {
    return waitUntil(`job ${id} to be ${status}`, async () => {
      const r = await this.request('GET', `/api/v1/jobs/${id}`, { token });
      return r.json?.status === status ? r.json : null;
    });
  }
}

// A Telegram Bot API that delivers everything (sendMessage answers ok).
export class FakeTelegram {
  constructor() {
    this.messages = [];
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        try { this.messages.push(JSON.parse(body)); } catch { /* recorded as nothing */ }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ok: true, result: { message_id: this.messages.length, date: 0 } }));
      });
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  async close() {
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// Chromium flags for this machine: no sandbox (root), no network but
// loopback (docs/ui.md).
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/install-deps.sh (package chromium)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

// A screenshot of the whole page into docs/ui/NAME.png.
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true, animations: 'disabled' });
}

// Waits until `locator` shows exactly `text` (playwright-core has no expect).
export async function waitForText(locator, text, timeout = 10000) {
  await locator.filter({ hasText: text }).first().waitFor({ state: 'visible', timeout });
}

export function readJson(file) { return JSON.parse(readFileSync(file, 'utf8')); }
