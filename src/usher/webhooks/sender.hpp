// The OutboundSender: one thread that delivers the webhook outbox
// (outbox.hpp) to the receivers of WEBHOOK_URLS. Each event is POSTed with
// `Usher-Signature: t=T,v1=HEX` (HMAC-SHA256 of `T.` + body under
// WEBHOOK_SIGNING_SECRET), retried with exponential backoff and jitter on
// any non-2xx answer or timeout, and given up WEBHOOK_RETRY_HOURS after the
// event was written, with one WARNING event naming the URL and the event id.
// Claims and outcomes go through the WriteBatcher; the writer never waits on
// a receiver: the POST runs between two small writes. Delivery is at least
// once (a sender that dies after the POST sends again when its lease ends):
// receivers de-duplicate on the event id.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include <usher/config/config.hpp>
#include <usher/store/database.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/util/clock.hpp>
#include <usher/webhooks/outbox.hpp>

namespace usher::curl {
struct Library;
} // namespace usher::curl

namespace usher::webhooks {

struct SenderSettings {
  std::string secret;                             // WEBHOOK_SIGNING_SECRET; never logged
  std::chrono::milliseconds timeout{5000};        // WEBHOOK_TIMEOUT_MS, per POST
  std::chrono::milliseconds backoff{1000};        // the first delay
  std::chrono::milliseconds max_backoff{3600000}; // a delay never grows beyond this
  std::chrono::milliseconds retry_window{24 * 3600 * 1000LL}; // WEBHOOK_RETRY_HOURS
  std::chrono::milliseconds poll_interval{500};
  int batch = 20; // events sent per poll at most
  std::string instance;
  const clock::Clock *clock = &clock::system_clock();
};

// The sender's settings as `config` gives them.
SenderSettings sender_settings(const config::Config &config);

// `url` as logs and the WARNING show it: credentials in it
// (`https://user:password@host/…`) become `***`.
std::string loggable_url(const std::string &url);

// `t=T,v1=HEX`: the Usher-Signature of `body` sent at Unix time `timestamp`.
std::string signature_header(std::string_view secret, std::int64_t timestamp,
                             std::string_view body);

// What one POST came to.
struct PostResult {
  enum class Outcome { delivered, failed, aborted };
  Outcome outcome = Outcome::failed;
  long http_status = 0;    // 0: no answer
  std::string description; // why it failed, for last_error and the WARNING
};

struct Decision {
  enum class Action { sent, retry, give_up, release };
  Action action = Action::retry;
  clock::WallTime next_attempt_at{};
  std::string error;
};

// Decides after attempt number `attempts` (this one included) of an event
// written at `created_at`, now at `now`: backoff * 2^(attempts-1), at most
// max_backoff, with jitter in [50 %, 100 %] (`jitter01` in [0, 1]), never
// past the give-up deadline (created_at + retry_window); a failure at or
// after the deadline gives up.
Decision decide(const PostResult &result, int attempts, clock::WallTime created_at,
                clock::WallTime now, const SenderSettings &settings, double jitter01);

class OutboundSender {
public:
  // Delivers the outbox of `db`; `writer` must outlive the sender.
  OutboundSender(const store::Database &db, store::WriteBatcher &writer, SenderSettings settings);
  ~OutboundSender();
  OutboundSender(const OutboundSender &) = delete;
  OutboundSender &operator=(const OutboundSender &) = delete;

  void start();
  // Aborts a POST in flight (within about a second), gives its event back
  // to the outbox and joins the thread. Call before the writer stops.
  // Idempotent.
  void stop();

  // Claims, POSTs and settles up to `batch` due events with `read` for the
  // reads; returns how many were attempted. The thread's loop body, public
  // for the unit tests.
  int deliver_due(soci::session &read);

private:
  void run();
  // POSTs `message`; `failed` without trying when libcurl is unavailable.
  PostResult post(const OutboundMessage &message);
  // Makes the handle on first use, so that a sender with nothing to send
  // never loads libcurl; false when libcurl is unavailable, with why in
  // `error`.
  bool open_handle(std::string &error);
  void settle(const OutboundMessage &message, const PostResult &result, const Decision &decision);
  bool write(store::WriteBatcher::Apply apply);
  void pause(std::chrono::milliseconds duration);

  const store::Database &m_db;
  store::WriteBatcher &m_writer;
  SenderSettings m_settings;
  std::chrono::milliseconds m_lease;
  std::mt19937_64 m_random{std::random_device{}()};
  const curl::Library *m_library = nullptr; // set with m_curl
  void *m_curl = nullptr;                   // CURL*, reused across POSTs
  std::atomic<bool> m_stopping{false};
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::thread m_thread;
};

} // namespace usher::webhooks
