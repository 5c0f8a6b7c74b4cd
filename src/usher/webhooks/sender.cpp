// The outbound event sender's loop and its POST over libcurl (see sender.hpp).
#include <usher/webhooks/sender.hpp>

#include <algorithm>
#include <memory>

#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <usher/alerts/delivery.hpp>
#include <usher/health/health_log.hpp>
#include <usher/util/curl_library.hpp>
#include <usher/util/log_fields.hpp>
#include <usher/util/text.hpp>
#include <usher/webhooks/signature.hpp>

namespace usher::webhooks {
namespace {

// How long a write of the sender may wait for the writer.
constexpr auto k_write_timeout = std::chrono::seconds(30);
// A failed database read is retried after this.
constexpr auto k_database_retry = std::chrono::seconds(1);
// Answers are read up to this and dropped: only the status matters.
constexpr std::size_t k_max_answer = 4096;

struct Transfer {
  std::size_t received = 0;
  const std::atomic<bool> *abort = nullptr;
};

std::size_t on_answer(char *, std::size_t size, std::size_t count, void *transfer) {
  auto &state = *static_cast<Transfer *>(transfer);
  state.received = std::min(k_max_answer, state.received + size * count);
  return size * count;
}

// Called about once a second even while nothing arrives: a non-zero answer
// aborts the transfer (CURLE_ABORTED_BY_CALLBACK).
int on_progress(void *transfer, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto *abort = static_cast<Transfer *>(transfer)->abort;
  return abort != nullptr && abort->load() ? 1 : 0;
}

} // namespace

std::string loggable_url(const std::string &url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const auto start = scheme + 3;
  const auto end = url.find_first_of("/?#", start);
  const auto at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
  if (at == std::string::npos || at < start) return url;
  return url.substr(0, start) + "***@" + url.substr(at + 1);
}

SenderSettings sender_settings(const config::Config &config) {
  SenderSettings settings;
  settings.secret = config.webhook_signing_secret;
  settings.timeout = config.webhook_timeout;
  settings.retry_window =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.webhook_retry);
  settings.instance = config.instance;
  return settings;
}

std::string signature_header(std::string_view secret, std::int64_t timestamp,
                             std::string_view body) {
  const std::string t = std::to_string(timestamp);
  std::string signed_text = t;
  signed_text += '.';
  signed_text += body;
  return "t=" + t + ",v1=" + text::to_hex(hmac_sha256(secret, signed_text));
}

Decision decide(const PostResult &result, int attempts, clock::WallTime created_at,
                clock::WallTime now, const SenderSettings &settings, double jitter01) {
  Decision decision;
  decision.next_attempt_at = now;
  decision.error = result.description;
  switch (result.outcome) {
  case PostResult::Outcome::delivered:
    decision.action = Decision::Action::sent;
    decision.error.clear();
    return decision;
  case PostResult::Outcome::aborted: decision.action = Decision::Action::release; return decision;
  case PostResult::Outcome::failed: break;
  }
  const auto deadline = created_at + settings.retry_window;
  if (now >= deadline) {
    decision.action = Decision::Action::give_up;
    return decision;
  }
  alerts::RetrySettings retry;
  retry.backoff = settings.backoff;
  retry.max_backoff = settings.max_backoff;
  decision.action = Decision::Action::retry;
  decision.next_attempt_at =
      std::min(now + alerts::retry_delay(retry, attempts, jitter01), deadline);
  return decision;
}

OutboundSender::OutboundSender(const store::Database &db, store::WriteBatcher &writer,
                               SenderSettings settings)
    : m_db(db), m_writer(writer), m_settings(std::move(settings)),
      // A claim outlives the longest POST with room to settle it; an event
      // whose sender died is taken again after this.
      m_lease(2 * m_settings.timeout + std::chrono::seconds(5)) {}

OutboundSender::~OutboundSender() {
  stop();
  if (m_library != nullptr) m_library->easy_cleanup(static_cast<CURL *>(m_curl));
}

bool OutboundSender::open_handle(std::string &error) {
  if (m_curl != nullptr) return true;
  const auto loaded = curl::library();
  if (!loaded) {
    error = loaded.error().detail;
    return false;
  }
  CURL *curl = (*loaded)->easy_init();
  if (curl == nullptr) {
    error = "libcurl could not create a handle";
    return false;
  }
  m_library = *loaded;
  m_curl = curl;
  return true;
}

void OutboundSender::start() {
  if (m_thread.joinable()) return;
  m_thread = std::thread([this] { run(); });
}

void OutboundSender::stop() {
  m_stopping.store(true);
  { std::lock_guard lock(m_mutex); }
  m_wake.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

void OutboundSender::pause(std::chrono::milliseconds duration) {
  std::unique_lock lock(m_mutex);
  m_wake.wait_for(lock, duration, [this] { return m_stopping.load(); });
}

bool OutboundSender::write(store::WriteBatcher::Apply apply) {
  // Deliveries are background work: requests go first (store/write_batcher.hpp).
  return m_writer.submit_and_wait(std::move(apply), k_write_timeout, store::Priority::background);
}

PostResult OutboundSender::post(const OutboundMessage &message) {
  if (std::string unavailable; !open_handle(unavailable)) {
    PostResult result;
    result.description = "cannot send: " + unavailable;
    return result;
  }
  const curl::Library &lib = *m_library;
  CURL *curl = static_cast<CURL *>(m_curl);
  lib.easy_reset(curl);
  const auto now = m_settings.clock->wall();
  const auto timestamp =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::string signature =
      "Usher-Signature: " + signature_header(m_settings.secret, timestamp, message.body);
  const std::string event_header = "Usher-Event-Id: " + message.event_id;
  curl_slist *headers = lib.slist_append(nullptr, "Content-Type: application/json");
  headers = lib.slist_append(headers, "Expect:"); // no 100-continue round trip
  headers = lib.slist_append(headers, signature.c_str());
  headers = lib.slist_append(headers, event_header.c_str());
  Transfer transfer;
  transfer.abort = &m_stopping;
  lib.easy_setopt(curl, CURLOPT_URL, message.url.c_str());
  lib.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  lib.easy_setopt(curl, CURLOPT_POST, 1L);
  lib.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  lib.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(m_settings.timeout.count()));
  lib.easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(m_settings.timeout.count()));
  lib.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  lib.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  lib.easy_setopt(curl, CURLOPT_USERAGENT, "usher/" USHER_VERSION);
  lib.easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_answer);
  lib.easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  lib.easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  lib.easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
  lib.easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
  lib.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(message.body.size()));
  lib.easy_setopt(curl, CURLOPT_POSTFIELDS, message.body.data());
  char error[CURL_ERROR_SIZE] = {};
  lib.easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  const CURLcode code = lib.easy_perform(curl);
  lib.easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  lib.easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  lib.slist_free_all(headers);

  PostResult result;
  if (code == CURLE_ABORTED_BY_CALLBACK) {
    result.outcome = PostResult::Outcome::aborted;
    result.description = "stopped while sending";
    return result;
  }
  if (code != CURLE_OK) {
    const std::string detail = error[0] != '\0' ? error : lib.easy_strerror(code);
    result.description =
        code == CURLE_OPERATION_TIMEDOUT
            ? fmt::format("no answer within {} ms ({})", m_settings.timeout.count(), detail)
            : fmt::format("cannot reach the receiver: {}", detail);
    return result;
  }
  lib.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.http_status);
  if (result.http_status >= 200 && result.http_status < 300) {
    result.outcome = PostResult::Outcome::delivered;
  } else {
    result.description = fmt::format("HTTP {}", result.http_status);
  }
  return result;
}

int OutboundSender::deliver_due(soci::session &read) {
  int attempted = 0;
  for (; attempted < m_settings.batch && !m_stopping.load(); ++attempted) {
    const std::string now = clock::iso8601(m_settings.clock->wall());
    {
      // Only the read is bounded here (the POST has WEBHOOK_TIMEOUT_MS): a
      // PostgreSQL that stops answering fails it instead of holding the sender.
      auto stall = m_db.guard(read, m_db.background_stall_limit());
      if (!has_due(read, now)) break;
    }
    auto claimed = std::make_shared<std::optional<OutboundMessage>>();
    const std::string lease_until = clock::iso8601(m_settings.clock->wall() + m_lease);
    if (!write([claimed, now, lease_until](store::WriteContext &context) {
          *claimed = claim_next(context.sql(), now, lease_until);
        })) {
      spdlog::warn("webhooks: could not claim an event from the outbox; retrying");
      break;
    }
    if (!claimed->has_value()) break; // another sender took it
    const OutboundMessage &message = **claimed;
    const PostResult result = post(message);
    std::uniform_real_distribution<double> jitter(0.0, 1.0);
    const auto answered_at = m_settings.clock->wall();
    const auto created = clock::parse_iso8601(message.created_at).value_or(answered_at);
    settle(
        message, result,
        decide(result, message.attempts + 1, created, answered_at, m_settings, jitter(m_random)));
  }
  return attempted;
}

void OutboundSender::run() {
  spdlog::info("webhooks: delivering outbound events");
  std::unique_ptr<soci::session> read;
  while (!m_stopping.load()) {
    try {
      if (!read) read = m_db.connect();
      deliver_due(*read);
    } catch (const std::exception &e) {
      // The outbox stays as it is; the next poll tries again.
      spdlog::warn("webhooks: sender failed: {}", e.what());
      read.reset();
      pause(k_database_retry);
      continue;
    }
    pause(m_settings.poll_interval);
  }
}

void OutboundSender::settle(const OutboundMessage &message, const PostResult &result,
                            const Decision &decision) {
  const auto id = message.id;
  const int attempts = message.attempts + 1;
  const std::string url = loggable_url(message.url);
  const std::string now = clock::iso8601(m_settings.clock->wall());
  const std::string error = decision.error;
  nlohmann::json fields = {
      {"outbox_id", id}, {"event_id", message.event_id}, {"url", url}, {"attempt", attempts}};
  bool written = false;
  switch (decision.action) {
  case Decision::Action::sent:
    written = write([id, now](store::WriteContext &context) { mark_sent(context.sql(), id, now); });
    log::with_fields(spdlog::level::info,
                     fmt::format("webhooks: event {} delivered to {} (attempt {})",
                                 message.event_id, url, attempts),
                     fields);
    break;
  case Decision::Action::release:
    written = write([id, now](store::WriteContext &context) { release(context.sql(), id, now); });
    break;
  case Decision::Action::retry: {
    const std::string next = clock::iso8601(decision.next_attempt_at);
    written = write([id, next, error](store::WriteContext &context) {
      schedule_retry(context.sql(), id, next, error);
    });
    fields["error"] = error;
    fields["next_attempt_at"] = next;
    log::with_fields(spdlog::level::warn,
                     fmt::format("webhooks: event {} to {} failed (attempt {}): {}; next attempt "
                                 "at {}",
                                 message.event_id, url, attempts, error, next),
                     fields);
    break;
  }
  case Decision::Action::give_up: {
    const std::string text = fmt::format("gave up delivering event {} to {} after {} attempts: {}",
                                         message.event_id, url, attempts, error);
    nlohmann::json metadata = {
        {"outbox_id", id},      {"event_id", message.event_id},      {"url", url},
        {"attempts", attempts}, {"http_status", result.http_status}, {"error", error}};
    const std::string instance = m_settings.instance;
    written = write([id, error, text, metadata, instance](store::WriteContext &context) {
      mark_failed(context.sql(), id, error);
      health::record(context.sql(), health::EventType::warning, text, metadata, instance);
    });
    log::with_fields(spdlog::level::warn, "webhooks: " + text, metadata);
    break;
  }
  }
  if (!written) {
    // The lease runs out and the event is tried again: at least once.
    spdlog::warn("webhooks: could not record the outcome of event {} to {}", message.event_id, url);
  }
}

} // namespace usher::webhooks
