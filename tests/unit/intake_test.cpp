// Unit tests for intake::Service: every outcome of one submission, against a
// real SQLite file, the real WriteBatcher and the embedded queue (or a queue
// that refuses, for the fallbacks).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <optional>
#include <string>

#include <usher/intake/service.hpp>
#include <usher/queue/embedded_queue.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/system/mode_cache.hpp>

#include "temp_database.hpp"

namespace usher::intake {
namespace {

using namespace std::chrono_literals;

constexpr auto k_max_wait = 30s;

// A queue whose circuit is open (`accepting` false) or whose dispatch fails.
class RefusingQueue final : public queue::JobQueue {
public:
  bool open_circuit = false;
  void dispatch(std::int64_t, Dispatched done) override {
    if (done) done(fail(ErrorKind::unavailable, "queue_down", "the stream refused the job"));
  }
  bool accepting() const override { return !open_circuit; }
  std::vector<jobs::ClaimedJob> claim(const std::string &, int, std::chrono::milliseconds,
                                      std::chrono::milliseconds) override {
    return {};
  }
  void acknowledge(const std::vector<std::int64_t> &) override {}
  void interrupt() override {}
  queue::QueueHealth health() const override { return {"refusing", false, "open"}; }
};

class IntakeTest : public ::testing::Test {
protected:
  IntakeTest()
      : m_database("intake"), m_writer(m_database.db(), 100),
        m_embedded(m_writer, std::chrono::milliseconds(50)) {}

  ~IntakeTest() override { m_writer.stop(); }

  // As `usher serve` does: the writer stops before the service and its queue
  // are destroyed, for a write the service submitted (the folded fallback
  // event) refers to it. TSan saw a heap-use-after-free when a test ended
  // with that write still queued.
  void stop_writer_before_the_service() { m_writer.stop(); }

  // A service on `queue` in `mode`.
  std::unique_ptr<Service> service(queue::JobQueue &queue, system::SystemMode mode) {
    m_mode.emplace(
        [mode] {
          return Result<system::ModeState>(system::ModeState{mode, 1, "", ""});
        },
        std::chrono::hours(1), [](const Error &) {});
    EXPECT_TRUE(m_mode->prime());
    return std::make_unique<Service>(m_writer, *m_mode, queue, m_in_flight,
                                     Settings{std::chrono::hours(24), 30s, "test", nullptr});
  }

  static Submission submission(const std::string &email, std::optional<std::string> key = {}) {
    Submission s;
    s.user.email = email;
    s.user.full_name = "Ada Lovelace";
    s.body = {{"email", email}, {"full_name", "Ada Lovelace"}};
    s.idempotency_key = std::move(key);
    return s;
  }

  // Submits and waits for the one outcome.
  Outcome submit(Service &service, Submission s) {
    std::promise<Outcome> promise;
    auto future = promise.get_future();
    int calls = 0;
    service.submit(std::move(s), m_caller, [&](Outcome outcome) {
      ++calls;
      promise.set_value(std::move(outcome));
    });
    if (future.wait_for(k_max_wait) != std::future_status::ready) {
      ADD_FAILURE() << "no outcome";
      return {};
    }
    auto outcome = future.get();
    EXPECT_EQ(calls, 1);
    return outcome;
  }

  std::string job_status(std::int64_t id) {
    return m_database.text("SELECT status FROM jobs WHERE id = :id", id);
  }

  testing::MigratedDatabase m_database;
  store::WriteBatcher m_writer;
  queue::EmbeddedQueue m_embedded;
  std::optional<system::ModeCache> m_mode;
  idempotency::InFlight m_in_flight;
  const provisioning::Creator m_caller{9, "sam (token 9)", "req-intake-test"};
};

TEST_F(IntakeTest, AsyncQueueRecordsAQueuedJobAndHandsItToTheQueue) {
  auto intake = service(m_embedded, system::SystemMode::async_queue);
  const auto outcome = submit(*intake, submission("queued@example.com"));
  ASSERT_EQ(outcome.kind, OutcomeKind::queued) << outcome.error.detail;
  EXPECT_GT(outcome.job_id, 0);
  EXPECT_EQ(outcome.answer["status"], "queued");
  EXPECT_EQ(outcome.answer["job_id"], outcome.job_id);
  EXPECT_EQ(outcome.answer["mode"], "async_queue");
  EXPECT_EQ(outcome.answer["activation_token"].get<std::string>().rfind("usher_a_", 0), 0u);
  EXPECT_EQ(stored_status(outcome.kind), 202);
  EXPECT_EQ(job_status(outcome.job_id), "queued");
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM accounts"), 0) << "a worker provisions it";
}

TEST_F(IntakeTest, SyncDirectProvisionsInline) {
  auto intake = service(m_embedded, system::SystemMode::sync_direct);
  const auto outcome = submit(*intake, submission("direct@example.com"));
  ASSERT_EQ(outcome.kind, OutcomeKind::created) << outcome.error.detail;
  EXPECT_FALSE(outcome.fallback);
  EXPECT_EQ(outcome.answer["mode"], "sync_direct");
  EXPECT_EQ(outcome.answer["fallback"], false);
  EXPECT_EQ(stored_status(outcome.kind), 201);
  EXPECT_EQ(job_status(outcome.job_id), "succeeded");
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM accounts WHERE email_normalized = :e",
                             "direct@example.com"),
            1);
}

TEST_F(IntakeTest, AnOpenCircuitProvisionsInlineAsAFallback) {
  RefusingQueue queue;
  queue.open_circuit = true;
  auto intake = service(queue, system::SystemMode::async_queue);
  const auto outcome = submit(*intake, submission("circuit@example.com"));
  ASSERT_EQ(outcome.kind, OutcomeKind::created) << outcome.error.detail;
  EXPECT_TRUE(outcome.fallback);
  EXPECT_EQ(outcome.answer["mode"], "async_queue");
  EXPECT_EQ(outcome.answer["fallback"], true);
  EXPECT_EQ(job_status(outcome.job_id), "succeeded");
  stop_writer_before_the_service();
}

TEST_F(IntakeTest, AFailedDispatchProvisionsTheQueuedJobInline) {
  RefusingQueue queue;
  auto intake = service(queue, system::SystemMode::async_queue);
  const auto outcome = submit(*intake, submission("dispatch@example.com", "key-1"));
  ASSERT_EQ(outcome.kind, OutcomeKind::created) << outcome.error.detail;
  EXPECT_TRUE(outcome.fallback);
  EXPECT_FALSE(outcome.answer["activation_token"].get<std::string>().empty());
  EXPECT_EQ(job_status(outcome.job_id), "succeeded");
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM jobs"), 1) << "the queued row, finished";
  // The key now replays the 201, not the 202 first stored.
  const auto again = submit(*intake, submission("dispatch@example.com", "key-1"));
  ASSERT_EQ(again.kind, OutcomeKind::replay);
  EXPECT_EQ(again.replay.status, 201);
  stop_writer_before_the_service();
}

TEST_F(IntakeTest, ASecondRequestForTheEmailIsUserExists) {
  auto intake = service(m_embedded, system::SystemMode::async_queue);
  ASSERT_EQ(submit(*intake, submission("twice@example.com")).kind, OutcomeKind::queued);
  const auto second = submit(*intake, submission("twice@example.com"));
  ASSERT_EQ(second.kind, OutcomeKind::refused);
  EXPECT_EQ(second.error.kind, ErrorKind::conflict);
  EXPECT_EQ(second.error.code, "user_exists");
}

TEST_F(IntakeTest, TheSameKeyAndBodyReplaysTheFirstAnswerWithoutTheToken) {
  auto intake = service(m_embedded, system::SystemMode::async_queue);
  const auto first = submit(*intake, submission("replay@example.com", "key-r"));
  ASSERT_EQ(first.kind, OutcomeKind::queued);
  const auto second = submit(*intake, submission("replay@example.com", "key-r"));
  ASSERT_EQ(second.kind, OutcomeKind::replay);
  EXPECT_EQ(second.replay.status, 202);
  const auto body = nlohmann::json::parse(second.replay.body);
  EXPECT_EQ(body["job_id"], first.job_id);
  EXPECT_FALSE(body.contains("activation_token"));
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM jobs"), 1);
}

TEST_F(IntakeTest, TheSameKeyWithAnotherBodyIsKeyReuse) {
  auto intake = service(m_embedded, system::SystemMode::sync_direct);
  ASSERT_EQ(submit(*intake, submission("first@example.com", "key-x")).kind, OutcomeKind::created);
  const auto second = submit(*intake, submission("other@example.com", "key-x"));
  ASSERT_EQ(second.kind, OutcomeKind::refused);
  EXPECT_EQ(second.error.kind, ErrorKind::unprocessable);
  EXPECT_EQ(second.error.code, "idempotency_key_reused");
}

TEST_F(IntakeTest, AKeyStillInFlightIsAConflict) {
  auto intake = service(m_embedded, system::SystemMode::sync_direct);
  ASSERT_TRUE(m_in_flight.begin(m_caller.token_id, "key-busy"));
  const auto outcome = submit(*intake, submission("busy@example.com", "key-busy"));
  ASSERT_EQ(outcome.kind, OutcomeKind::refused);
  EXPECT_EQ(outcome.error.code, "idempotency_key_in_flight");
  m_in_flight.end(m_caller.token_id, "key-busy");
  // The key is released after each outcome: the next request with it runs.
  EXPECT_EQ(submit(*intake, submission("busy@example.com", "key-busy")).kind, OutcomeKind::created);
  EXPECT_TRUE(m_in_flight.begin(m_caller.token_id, "key-busy"));
}

TEST_F(IntakeTest, AFullWriteQueueIsUnavailable) {
  store::WriteBatcher writer(m_database.db(), 1);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::promise<void> holding;
  // One write holds the writer thread, one fills the queue.
  ASSERT_TRUE(writer.submit(
      [&holding, released](store::WriteContext &) {
        holding.set_value();
        (void)released.wait_for(k_max_wait);
      },
      [](const Result<void> &) {}));
  ASSERT_EQ(holding.get_future().wait_for(k_max_wait), std::future_status::ready);
  ASSERT_TRUE(writer.submit([](store::WriteContext &) {}, [](const Result<void> &) {}));

  m_mode.emplace([] { return Result<system::ModeState>(system::ModeState{}); },
                 std::chrono::hours(1), [](const Error &) {});
  ASSERT_TRUE(m_mode->prime());
  Service intake(writer, *m_mode, m_embedded, m_in_flight,
                 Settings{std::chrono::hours(24), 30s, "test", nullptr});
  const auto outcome = submit(intake, submission("full@example.com", "key-f"));
  release.set_value();
  writer.stop();
  ASSERT_EQ(outcome.kind, OutcomeKind::refused);
  EXPECT_EQ(outcome.error.kind, ErrorKind::unavailable);
  EXPECT_TRUE(m_in_flight.begin(m_caller.token_id, "key-f")) << "the key was released";
}

} // namespace
} // namespace usher::intake
