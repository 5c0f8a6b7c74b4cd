// Unit tests for the job state machine (jobs/job_store.hpp): claims, leases
// and their expiry, guarded transitions, retries with backoff, dead jobs and
// their retry. Times are passed in (leases, retry times) so nothing sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <usher/jobs/job_store.hpp>
#include <usher/util/clock.hpp>

#include "temp_database.hpp"

namespace usher::jobs {
namespace {

using namespace std::chrono_literals;

std::string in(std::chrono::milliseconds from_now) {
  return clock::iso8601(std::chrono::system_clock::now() + from_now);
}

class JobStoreTest : public ::testing::Test {
protected:
  JobStoreTest() : m_database("job_store") {}

  soci::session &sql() { return m_database.sql(); }

  std::int64_t enqueue(const std::string &email) {
    provisioning::NewUser user;
    user.email = email;
    user.full_name = "Grace Hopper";
    IntakeStatements intake(sql());
    auto queued = intake.enqueue(user, {4, "kim (token 4)", ""}, std::chrono::hours(24));
    EXPECT_TRUE(queued) << (queued ? "" : queued.error().detail);
    return queued ? queued->job_id : 0;
  }

  Job job(std::int64_t id) {
    auto found = find(sql(), id);
    EXPECT_TRUE(found.has_value());
    return found.value_or(Job{});
  }

  std::string lease_owner(std::int64_t id) {
    return m_database.text("SELECT lease_owner FROM jobs WHERE id = :id", id);
  }

  long long events(const std::string &type) {
    return m_database.count("SELECT COUNT(*) FROM system_health_logs WHERE event_type = :t", type);
  }

  testing::MigratedDatabase m_database;
};

TEST_F(JobStoreTest, EnqueueRefusesASecondActiveJobForTheEmail) {
  EXPECT_GT(enqueue("one@example.com"), 0);
  provisioning::NewUser user;
  user.email = "one@example.com";
  user.full_name = "Grace Hopper";
  IntakeStatements intake(sql());
  const auto second = intake.enqueue(user, {4, "kim (token 4)", ""}, std::chrono::hours(24));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, "user_exists");
}

// The writer keeps one IntakeStatements per connection. On SQLite the new
// job's id is the connection's last inserted rowid and a conflict is an
// INSERT that changed no row: a duplicate right after a successful insert
// must still be user_exists (not that insert's id), and a job's id must be
// its own row's even after a row was inserted into another table.
TEST_F(JobStoreTest, OnePreparedIntakeReportsEachJobsOwnIdAndEveryDuplicate) {
  IntakeStatements intake(sql());
  const provisioning::Creator creator{4, "kim (token 4)", ""};
  provisioning::NewUser user;
  user.full_name = "Grace Hopper";
  const auto enqueue_as = [&](const std::string &email) {
    user.email = email;
    return intake.enqueue(user, creator, std::chrono::hours(24));
  };
  const auto row_id = [&](const std::string &email) {
    return m_database.count("SELECT id FROM jobs WHERE email = :e", email);
  };

  const auto first = enqueue_as("first@example.com");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->job_id, row_id("first@example.com"));
  const auto again = enqueue_as("first@example.com");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, "user_exists");

  sql() << "CREATE TABLE other_rows (id INTEGER PRIMARY KEY)";
  sql() << "INSERT INTO other_rows (id) VALUES (1000)";
  const auto after_other = enqueue_as("first@example.com");
  ASSERT_FALSE(after_other);
  EXPECT_EQ(after_other.error().code, "user_exists");

  const auto second = enqueue_as("second@example.com");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->job_id, row_id("second@example.com"));
  EXPECT_NE(second->job_id, first->job_id);
  sql() << "INSERT INTO other_rows (id) VALUES (2000)";
  const auto third = enqueue_as("third@example.com");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->job_id, row_id("third@example.com"));
  EXPECT_EQ(m_database.count("SELECT COUNT(*) FROM jobs"), 3);
}

TEST_F(JobStoreTest, ClaimLeasesDueJobsOldestFirstAndCountsAnAttempt) {
  const auto first = enqueue("a@example.com");
  const auto second = enqueue("b@example.com");
  const auto third = enqueue("c@example.com");
  const auto claimed = claim(sql(), "w1", 2, in(30s));
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_EQ(claimed[0].id, first);
  EXPECT_EQ(claimed[1].id, second);
  EXPECT_EQ(claimed[0].attempts, 1);
  EXPECT_EQ(claimed[0].user.email, "a@example.com");
  EXPECT_EQ(claimed[0].creator.token_id, 4);
  EXPECT_EQ(claimed[0].creator.actor, "kim (token 4)");
  EXPECT_TRUE(claimed[0].activation_hash.has_value());
  EXPECT_EQ(job(first).status, JobStatus::running);
  EXPECT_EQ(lease_owner(first), "w1");
  EXPECT_EQ(job(third).status, JobStatus::queued);
  // What is leased is not claimed again.
  const auto rest = claim(sql(), "w2", 10, in(30s));
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, third);
  EXPECT_TRUE(claim(sql(), "w3", 10, in(30s)).empty());
}

TEST_F(JobStoreTest, ClaimedJobsCarryTheirIntakeTime) {
  const auto id = enqueue("intake@example.com");
  const auto claimed = claim(sql(), "w1", 1, in(30s));
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].created_at, job(id).created_at);
  EXPECT_TRUE(clock::parse_iso8601(claimed[0].created_at).has_value());
}

TEST_F(JobStoreTest, QueueDepthCountsWaitingJobsUpToTheLimit) {
  const auto none = queue_depth(sql(), 100);
  EXPECT_EQ(none.queued, 0);
  EXPECT_FALSE(none.oldest_waiting_seconds.has_value());
  enqueue("d1@example.com");
  enqueue("d2@example.com");
  enqueue("d3@example.com");
  EXPECT_EQ(queue_depth(sql(), 100).queued, 3);
  EXPECT_EQ(queue_depth(sql(), 2).queued, 2); // saturates at the limit
  const auto depth = queue_depth(sql(), 100);
  ASSERT_TRUE(depth.oldest_waiting_seconds.has_value());
  EXPECT_GE(*depth.oldest_waiting_seconds, 0.0);
  EXPECT_LT(*depth.oldest_waiting_seconds, 60.0);
  // A running job is not waiting.
  ASSERT_EQ(claim(sql(), "w1", 1, in(30s)).size(), 1u);
  EXPECT_EQ(queue_depth(sql(), 100).queued, 2);
}

TEST_F(JobStoreTest, QueueDepthAgesOnlyDueJobsFromWhenTheyBecameDue) {
  const long long id = enqueue("backoff@example.com");
  // Named: SOCI runs the statement after the expression's temporaries died.
  std::string run_after = in(-90s);
  sql() << "UPDATE jobs SET run_after = :t WHERE id = :id", soci::use(run_after), soci::use(id);
  const auto late = queue_depth(sql(), 100);
  ASSERT_TRUE(late.oldest_waiting_seconds.has_value());
  EXPECT_GE(*late.oldest_waiting_seconds, 89.0);
  EXPECT_LT(*late.oldest_waiting_seconds, 150.0);
  // Waiting out a backoff: queued, not late.
  run_after = in(60s);
  sql() << "UPDATE jobs SET run_after = :t WHERE id = :id", soci::use(run_after), soci::use(id);
  const auto waiting = queue_depth(sql(), 100);
  EXPECT_EQ(waiting.queued, 1);
  EXPECT_FALSE(waiting.oldest_waiting_seconds.has_value());
}

TEST_F(JobStoreTest, ClaimIdsTakesOnlyQueuedDueJobsInTheGivenOrder) {
  const auto first = enqueue("a@example.com");
  const auto second = enqueue("b@example.com");
  ASSERT_EQ(claim_ids(sql(), {first}, "w1", in(30s)).size(), 1u);
  const auto claimed = claim_ids(sql(), {second, first, 999}, "w2", in(30s));
  ASSERT_EQ(claimed.size(), 1u) << "the running job and the missing one are skipped";
  EXPECT_EQ(claimed[0].id, second);
}

// The claim of a Redis batch is one statement per 512 ids; each row keeps
// the guard of a claim by id: queued and due, taken once.
TEST_F(JobStoreTest, ClaimIdsTakesABatchWithTheGuardOfEachRow) {
  std::vector<std::int64_t> ids;
  {
    soci::transaction batch(sql()); // one commit for the rows, not 600
    for (int i = 0; i < 600; ++i) ids.push_back(enqueue("u" + std::to_string(i) + "@example.com"));
    batch.commit();
  }
  const auto running = ids[10];
  ASSERT_EQ(claim_ids(sql(), {running}, "w1", in(30s)).size(), 1u);
  const long long succeeded = ids[20], not_due = ids[550];
  sql() << "UPDATE jobs SET status = 'succeeded' WHERE id = :id", soci::use(succeeded);
  const auto later = in(1h);
  sql() << "UPDATE jobs SET run_after = :t WHERE id = :id", soci::use(later), soci::use(not_due);

  // Newest first, with a duplicate and a missing id: the order given is kept.
  std::vector<std::int64_t> wanted(ids.rbegin(), ids.rend());
  wanted.push_back(ids[5]);
  wanted.push_back(999'999);
  const auto claimed = claim_ids(sql(), wanted, "w2", in(30s));
  ASSERT_EQ(claimed.size(), 597u) << "all but the running, the succeeded and the future one";
  std::vector<std::int64_t> expected;
  std::set<std::int64_t> skipped{running, succeeded, not_due, 999'999};
  for (const auto id : wanted) {
    if (skipped.insert(id).second) expected.push_back(id); // each id once, first place
  }
  std::vector<std::int64_t> got;
  for (const auto &job : claimed) {
    got.push_back(job.id);
    EXPECT_EQ(job.attempts, 1) << "job " << job.id;
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(claimed.front().user.email, "u599@example.com") << "the row's payload";
  EXPECT_EQ(lease_owner(running), "w1") << "a running job keeps its owner";
  EXPECT_EQ(lease_owner(ids[0]), "w2");
  EXPECT_EQ(job(succeeded).status, JobStatus::succeeded);
  EXPECT_EQ(job(not_due).status, JobStatus::queued);
  EXPECT_TRUE(claim_ids(sql(), wanted, "w3", in(30s)).empty()) << "nothing is taken twice";
}

TEST_F(JobStoreTest, OnlyTheOwnerExtendsItsLease) {
  const auto id = enqueue("a@example.com");
  ASSERT_EQ(claim(sql(), "w1", 1, in(30s)).size(), 1u);
  EXPECT_TRUE(extend_lease(sql(), id, "w1", in(60s)));
  const auto other = extend_lease(sql(), id, "w2", in(60s));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error(), TransitionError::lease_lost);
}

TEST_F(JobStoreTest, AnExpiredLeaseIsRecoveredAndTheJobClaimedAgain) {
  const auto id = enqueue("a@example.com");
  ASSERT_EQ(claim(sql(), "crashed", 1, in(-1s)).size(), 1u);
  // A lease still running is not touched.
  const auto other = enqueue("b@example.com");
  ASSERT_EQ(claim(sql(), "alive", 1, in(30s)).size(), 1u);

  const auto requeued = recover_expired_leases(sql(), 3, "test");
  ASSERT_EQ(requeued, std::vector<std::int64_t>{id});
  const auto recovered = job(id);
  EXPECT_EQ(recovered.status, JobStatus::queued);
  EXPECT_EQ(recovered.attempts, 1) << "the crashed attempt counts";
  EXPECT_EQ(recovered.last_error,
            std::optional<std::string>("the worker holding the lease stopped or crashed"));
  EXPECT_EQ(job(other).status, JobStatus::running);

  const auto again = claim(sql(), "w2", 10, in(30s));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, id);
  EXPECT_EQ(again[0].attempts, 2);
}

TEST_F(JobStoreTest, AnExpiredLeaseOnTheLastAttemptMakesTheJobDead) {
  const auto id = enqueue("a@example.com");
  ASSERT_EQ(claim(sql(), "crashed", 1, in(-1s)).size(), 1u);
  std::size_t died = 0;
  EXPECT_TRUE(recover_expired_leases(sql(), 1, "test", nullptr, &died).empty());
  EXPECT_EQ(died, 1u);
  EXPECT_EQ(job(id).status, JobStatus::dead);
  EXPECT_EQ(events("ERROR"), 1);
}

TEST_F(JobStoreTest, AFailedAttemptIsRetriedAfterItsBackoffThenDead) {
  const auto id = enqueue("a@example.com");
  ASSERT_EQ(claim(sql(), "w1", 1, in(30s)).size(), 1u);
  EXPECT_EQ(fail_attempt(sql(), id, "w1", "smtp down", in(1h), 2, "test"), JobStatus::queued);
  EXPECT_EQ(job(id).last_error, std::optional<std::string>("smtp down"));
  EXPECT_EQ(lease_owner(id), "<null>");
  EXPECT_TRUE(claim(sql(), "w1", 1, in(30s)).empty()) << "not before its retry time";

  // Due now: the second and last attempt.
  const auto due = in(-1s); // bound by reference: must outlive the statement
  sql() << "UPDATE jobs SET run_after = :t", soci::use(due);
  const auto second = claim(sql(), "w1", 1, in(30s));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempts, 2);
  EXPECT_EQ(fail_attempt(sql(), id, "w1", "smtp still down", in(1h), 2, "test"), JobStatus::dead);
  EXPECT_EQ(job(id).status, JobStatus::dead);
  EXPECT_EQ(events("ERROR"), 1) << "a dead job is an ERROR event";
  EXPECT_TRUE(claim(sql(), "w1", 1, in(30s)).empty());
}

TEST_F(JobStoreTest, TransitionsOfAnotherOwnerChangeNothing) {
  const auto id = enqueue("a@example.com");
  ASSERT_EQ(claim(sql(), "w1", 1, in(30s)).size(), 1u);
  const auto late = fail_attempt(sql(), id, "w2", "late", in(1s), 3, "test");
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error(), TransitionError::lease_lost);
  EXPECT_EQ(release_leases(sql(), "w2"), 0);
  EXPECT_EQ(job(id).status, JobStatus::running);
  EXPECT_EQ(lease_owner(id), "w1");
}

TEST_F(JobStoreTest, ReleasedLeasesGoBackWithoutCountingTheAttempt) {
  const auto id = enqueue("a@example.com");
  ASSERT_EQ(claim(sql(), "w1", 1, in(30s)).size(), 1u);
  EXPECT_EQ(release_leases(sql(), "w1"), 1);
  const auto released = job(id);
  EXPECT_EQ(released.status, JobStatus::queued);
  EXPECT_EQ(released.attempts, 0);
}

TEST_F(JobStoreTest, ADeadJobIsRetriedFromZeroAttempts) {
  const auto id = enqueue("a@example.com");
  ASSERT_EQ(claim(sql(), "w1", 1, in(30s)).size(), 1u);
  ASSERT_EQ(fail_attempt(sql(), id, "w1", "boom", in(0ms), 1, "test"), JobStatus::dead);

  const auto retried = retry_dead(sql(), id, "admin (token 1)", "test");
  ASSERT_TRUE(retried) << retried.error().detail;
  EXPECT_EQ(retried->status, JobStatus::queued);
  EXPECT_EQ(retried->attempts, 0);
  EXPECT_EQ(retried->last_error, std::nullopt);
  EXPECT_EQ(events("INFO"), 1);
  EXPECT_EQ(claim(sql(), "w1", 1, in(30s)).size(), 1u);
}

TEST_F(JobStoreTest, RetryRefusesJobsThatAreNotDeadOrWhoseEmailIsTakenAgain) {
  EXPECT_EQ(retry_dead(sql(), 12345, "admin", "test").error().code, "job_not_found");
  const auto id = enqueue("a@example.com");
  const auto queued = retry_dead(sql(), id, "admin", "test");
  ASSERT_FALSE(queued);
  EXPECT_EQ(queued.error().code, "job_not_dead");
  EXPECT_EQ(queued.error().kind, ErrorKind::conflict);

  ASSERT_EQ(claim(sql(), "w1", 1, in(30s)).size(), 1u);
  ASSERT_EQ(fail_attempt(sql(), id, "w1", "boom", in(0ms), 1, "test"), JobStatus::dead);
  const auto newer = enqueue("a@example.com"); // a new request for the same customer
  EXPECT_GT(newer, 0);
  const auto taken = retry_dead(sql(), id, "admin", "test");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, "user_exists");
  EXPECT_EQ(job(id).status, JobStatus::dead);
}

TEST_F(JobStoreTest, StateOfAndQueuedSinceSeeTheRows) {
  const auto id = enqueue("a@example.com");
  const auto state = state_of(sql(), id);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->status, JobStatus::queued);
  EXPECT_EQ(state_of(sql(), id + 100), std::nullopt);
  const auto refs = queued_since(sql(), in(1s), 0, 10);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].id, id);
  EXPECT_TRUE(queued_since(sql(), in(1s), id, 10).empty());
  const auto counts = stats(sql());
  EXPECT_EQ(counts.queued, 1);
  EXPECT_EQ(counts.running, 0);
}

} // namespace
} // namespace usher::jobs
