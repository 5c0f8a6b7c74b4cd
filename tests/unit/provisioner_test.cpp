// Unit tests for the one provisioning routine (jobs/provisioner.hpp) under
// each of its callers — sync_direct (provision_inline), the worker (a job
// taken by jobs::claim) and the fallback (a job taken by jobs::claim_ids) —
// against a migrated temporary SQLite database.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <soci/sqlite3/soci-sqlite3.h>

#include <usher/auth/activation.hpp>
#include <usher/jobs/attempts.hpp>
#include <usher/jobs/job_store.hpp>
#include <usher/jobs/provisioner.hpp>
#include <usher/jobs/timeline.hpp>
#include <usher/provisioning/provisioner.hpp>
#include <usher/store/database.hpp>
#include <usher/store/migrations.hpp>
#include <usher/store/write_batcher.hpp>
#include <usher/util/clock.hpp>
#include <usher/util/crypto.hpp>

namespace usher::provisioning {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::hours k_activation_ttl{24 * 7};

// A migrated SQLite database file of its own, removed with its WAL files
// when the test ends.
class ProvisionerTest : public ::testing::Test {
protected:
  ProvisionerTest() : m_path(unique_path()), m_db("sqlite:" + m_path.string(), 5000ms) {}

  void SetUp() override {
    crypto::initialise();
    m_sql = m_db.connect();
    store::migrate(*m_sql, m_db.dialect());
  }

  void TearDown() override {
    m_sql.reset();
    for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(m_path.string() + suffix, ignored);
    }
  }

  // provision_inline in its own transaction, committed only on success.
  Result<CreatedUser> create(const NewUser &user) {
    soci::transaction transaction(*m_sql);
    auto created = jobs::provision_inline(*m_sql, user, m_creator, k_activation_ttl);
    if (created) transaction.commit();
    return created;
  }

  long long count(const std::string &sql_text, const std::string &bound) {
    long long n = -1;
    *m_sql << sql_text, soci::use(bound), soci::into(n);
    return n;
  }

  static NewUser buyer(const std::string &email) {
    NewUser user;
    user.email = email;
    user.full_name = "J\xC3\xBCrgen O'Neil";
    user.phone = "+49 30 1234567";
    user.product = "Tripwire Pro";
    return user;
  }

  static std::filesystem::path unique_path() {
    static std::atomic<int> counter{0};
    return std::filesystem::temp_directory_path() /
           ("usher_unit_provisioner_" + std::to_string(getpid()) + "_" + std::to_string(counter++) +
            "_" + std::to_string(std::random_device{}()) + ".db");
  }

  std::filesystem::path m_path;
  store::Database m_db;
  std::unique_ptr<soci::session> m_sql;
  const Creator m_creator{7, "alice (token 7)", ""};
};

TEST_F(ProvisionerTest, CreatesAccountProfileJobAndActivationToken) {
  const auto created = create(buyer("buyer@example.com"));
  ASSERT_TRUE(created) << created.error().detail;
  EXPECT_GT(created->user_id, 0);
  EXPECT_GT(created->job_id, 0);
  EXPECT_EQ(created->activation_token.rfind("usher_a_", 0), 0u) << created->activation_token;

  const long long user_id = created->user_id;
  std::string email, email_normalized;
  soci::indicator password_indicator = soci::i_ok;
  std::string password_hash;
  *m_sql << "SELECT email, email_normalized, password_hash FROM accounts WHERE id = :id",
      soci::use(user_id), soci::into(email), soci::into(email_normalized),
      soci::into(password_hash, password_indicator);
  ASSERT_TRUE(m_sql->got_data());
  EXPECT_EQ(email, "buyer@example.com");
  EXPECT_EQ(email_normalized, "buyer@example.com");
  EXPECT_EQ(password_indicator, soci::i_null) << "not activated yet";

  std::string full_name, phone, product, created_by;
  long long token_id = 0;
  *m_sql << "SELECT full_name, phone, product, created_by, created_by_token_id "
            "FROM tripwire_users WHERE user_id = :id",
      soci::use(user_id), soci::into(full_name), soci::into(phone), soci::into(product),
      soci::into(created_by), soci::into(token_id);
  ASSERT_TRUE(m_sql->got_data());
  EXPECT_EQ(full_name, "J\xC3\xBCrgen O'Neil");
  EXPECT_EQ(phone, "+49 30 1234567");
  EXPECT_EQ(product, "Tripwire Pro");
  EXPECT_EQ(created_by, "alice (token 7)");
  EXPECT_EQ(token_id, 7);

  const long long job_id = created->job_id;
  std::string status, payload;
  long long job_user_id = 0;
  int attempts = 0;
  *m_sql << "SELECT status, user_id, attempts, payload FROM jobs WHERE id = :id", soci::use(job_id),
      soci::into(status), soci::into(job_user_id), soci::into(attempts), soci::into(payload);
  ASSERT_TRUE(m_sql->got_data());
  EXPECT_EQ(status, "succeeded");
  EXPECT_EQ(job_user_id, user_id);
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(nlohmann::json::parse(payload), buyer("buyer@example.com").to_json());
  EXPECT_EQ(count("SELECT COUNT(*) FROM jobs WHERE id = :id AND lease_owner IS NULL AND "
                  "lease_expires_at IS NULL AND last_error IS NULL AND created_at <= updated_at",
                  std::to_string(job_id)),
            1);

  // Only the digest of the activation token is stored.
  EXPECT_EQ(count("SELECT COUNT(*) FROM activation_tokens WHERE token_hash = :h",
                  auth::activation_digest(created->activation_token)),
            1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM activation_tokens WHERE token_hash = :h",
                  created->activation_token),
            0);
}

TEST_F(ProvisionerTest, OptionalFieldsAreStoredAsNull) {
  NewUser user = buyer("minimal@example.com");
  user.phone.reset();
  user.product.reset();
  const auto created = create(user);
  ASSERT_TRUE(created) << created.error().detail;

  const auto record = find_user_by_id(*m_sql, created->user_id);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->email, "minimal@example.com");
  EXPECT_EQ(record->full_name, std::optional<std::string>("J\xC3\xBCrgen O'Neil"));
  EXPECT_EQ(record->phone, std::nullopt);
  EXPECT_EQ(record->product, std::nullopt);
  EXPECT_EQ(record->activated_at, std::nullopt);
}

TEST_F(ProvisionerTest, SecondCallForTheSameEmailIsUserExists) {
  ASSERT_TRUE(create(buyer("twice@example.com")));
  const auto second = create(buyer("twice@example.com"));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, ErrorKind::conflict);
  EXPECT_EQ(second.error().code, "user_exists");
  EXPECT_EQ(second.error().field, "email");

  const std::string email = "twice@example.com";
  EXPECT_EQ(count("SELECT COUNT(*) FROM accounts WHERE email_normalized = :e", email), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM jobs WHERE email_normalized = :e", email), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM tripwire_users t JOIN accounts a ON a.id = t.user_id "
                  "WHERE a.email_normalized = :e",
                  email),
            1);
}

TEST_F(ProvisionerTest, AQueuedJobForTheEmailAlsoMeansUserExists) {
  // An async request recorded the email first; the inline path must not
  // provision it a second time.
  const std::string email = "queued@example.com";
  *m_sql << "INSERT INTO jobs (email, email_normalized, active_email, payload, status, "
            "run_after, created_at, updated_at) "
            "VALUES (:e, :n, :a, '{}', 'queued', 'now', 'now', 'now')",
      soci::use(email), soci::use(email), soci::use(email);
  const auto created = create(buyer(email));
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, "user_exists");
  EXPECT_EQ(count("SELECT COUNT(*) FROM accounts WHERE email_normalized = :e", email), 0)
      << "the caller's rollback removes the account written before the conflict";
}

TEST_F(ProvisionerTest, DifferentEmailsGetDifferentAccounts) {
  const auto first = create(buyer("first@example.com"));
  const auto second = create(buyer("second@example.com"));
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_NE(first->user_id, second->user_id);
  EXPECT_NE(first->activation_token, second->activation_token);

  const auto found = find_user_by_email(*m_sql, "second@example.com");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, second->user_id);
  EXPECT_EQ(found->created_by, std::optional<std::string>("alice (token 7)"));
  EXPECT_EQ(find_user_by_email(*m_sql, "nobody@example.com"), std::nullopt);
}

TEST_F(ProvisionerTest, WriterProvisionsWithPreparedStatementsAcrossBatches) {
  // The writer's hot path: one Provisioner per connection,
  // re-executed for every user, also after a write that was rolled back.
  const std::vector<std::string> emails = {"p1@example.com", "p2@example.com", "p1@example.com",
                                           "p3@example.com"};
  std::vector<std::promise<Result<void>>> done(emails.size() + 1);
  std::vector<CreatedUser> created(emails.size() + 1);
  store::WriteBatcher batcher(m_db, 100);
  auto provision = [&](std::size_t i, const std::string &email) {
    return batcher.submit(
        [&, i, email](store::WriteContext &context) {
          auto result = context.prepared<jobs::Provisioner>().provision_inline(
              buyer(email), m_creator, k_activation_ttl);
          if (!result) throw store::AbortWrite(result.error());
          created[i] = *result;
        },
        [&done, i](const Result<void> &result) { done[i].set_value(result); });
  };
  auto outcome = [&](std::size_t i) -> Result<void> {
    auto future = done[i].get_future();
    if (future.wait_for(30s) != std::future_status::ready) {
      return fail(ErrorKind::timeout, "test_timeout", "the write never finished");
    }
    return future.get();
  };

  for (std::size_t i = 0; i < emails.size(); ++i) ASSERT_TRUE(provision(i, emails[i]));
  std::vector<Result<void>> results;
  for (std::size_t i = 0; i < emails.size(); ++i) results.push_back(outcome(i));
  // A later batch on the same connection and statements.
  ASSERT_TRUE(provision(emails.size(), "p4@example.com"));
  results.push_back(outcome(emails.size()));
  batcher.stop();

  for (const std::size_t i : {0u, 1u, 3u, 4u}) {
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error().detail;
    EXPECT_GT(created[i].user_id, 0) << i;
    EXPECT_FALSE(created[i].activation_token.empty()) << i;
  }
  ASSERT_FALSE(results[2]);
  EXPECT_EQ(results[2].error().code, "user_exists");
  EXPECT_EQ(results[2].error().kind, ErrorKind::conflict);

  const std::string any;
  EXPECT_EQ(count("SELECT COUNT(*) FROM accounts WHERE email_normalized <> :x", any), 4);
  EXPECT_EQ(count("SELECT COUNT(*) FROM tripwire_users WHERE created_by <> :x", any), 4);
  EXPECT_EQ(count("SELECT COUNT(*) FROM jobs WHERE status = 'succeeded' AND email <> :x", any), 4);
  EXPECT_EQ(
      count("SELECT COUNT(DISTINCT token_hash) FROM activation_tokens WHERE token_hash <> :x", any),
      4);
  const auto p4 = find_user_by_email(*m_sql, "p4@example.com");
  ASSERT_TRUE(p4.has_value());
  EXPECT_EQ(p4->id, created[4].user_id);
  EXPECT_EQ(p4->full_name, std::optional<std::string>("J\xC3\xBCrgen O'Neil"));
}

// A queued job for `user`, committed, as async intake records it.
class ProvisionQueuedTest : public ProvisionerTest {
protected:
  std::int64_t enqueue(const NewUser &user) {
    soci::transaction transaction(*m_sql);
    jobs::IntakeStatements intake(*m_sql);
    auto queued = intake.enqueue(user, m_creator, k_activation_ttl);
    EXPECT_TRUE(queued) << (queued ? "" : queued.error().detail);
    transaction.commit();
    m_activation_token = queued ? queued->activation_token : "";
    return queued ? queued->job_id : 0;
  }

  static std::string lease_until() {
    return clock::iso8601(std::chrono::system_clock::now() + 30s);
  }

  // provision() in its own transaction, committed only on success.
  tl::expected<jobs::Provisioned, jobs::TransitionError> provision(const jobs::ClaimedJob &job,
                                                                   const std::string &owner) {
    soci::transaction transaction(*m_sql);
    jobs::Provisioner provisioner(*m_sql);
    auto provisioned = provisioner.provision(job, owner);
    if (provisioned) transaction.commit();
    return provisioned;
  }

  std::string status_of(std::int64_t job_id) {
    const long long id = job_id;
    std::string status;
    *m_sql << "SELECT status FROM jobs WHERE id = :id", soci::use(id), soci::into(status);
    return status;
  }

  std::string m_activation_token;
};

TEST_F(ProvisionQueuedTest, WorkerClaimThenProvisionCreatesEverythingOnce) {
  const auto job_id = enqueue(buyer("worker@example.com"));
  auto claimed = jobs::claim(*m_sql, "worker-1", 10, lease_until());
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, job_id);
  EXPECT_EQ(claimed[0].creator.actor, "alice (token 7)");

  const auto provisioned = provision(claimed[0], "worker-1");
  ASSERT_TRUE(provisioned);
  EXPECT_TRUE(provisioned->account_created);
  EXPECT_EQ(status_of(job_id), "succeeded");
  const auto record = find_user_by_email(*m_sql, "worker@example.com");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->id, provisioned->user_id);
  EXPECT_EQ(record->created_by, std::optional<std::string>("alice (token 7)"));
  // The token handed out in the 202 is the one that activates the account.
  EXPECT_EQ(count("SELECT COUNT(*) FROM activation_tokens WHERE token_hash = :h",
                  auth::activation_digest(m_activation_token)),
            1);
}

// The statements a SQLite session finishes while this object lives that
// stepped through a whole table (SQLITE_STMTSTATUS_FULLSCAN_STEP) or sorted
// (SQLITE_STMTSTATUS_SORT: an ORDER BY no index gave): their cost grows with
// the table or the backlog, so the drain would not stay flat as the
// database grows (docs/benchmarks.md, "Drain as the database grows").
class FullScans {
public:
  explicit FullScans(soci::session &sql)
      : m_db(static_cast<soci::sqlite3_session_backend *>(sql.get_backend())->conn_) {
    sqlite_api::sqlite3_trace_v2(m_db, SQLITE_TRACE_PROFILE, &FullScans::finished, this);
  }
  ~FullScans() { sqlite_api::sqlite3_trace_v2(m_db, 0, nullptr, nullptr); }
  FullScans(const FullScans &) = delete;
  FullScans &operator=(const FullScans &) = delete;

  const std::vector<std::string> &statements() const { return m_statements; }

private:
  static int finished(unsigned, void *self, void *statement, void *) {
    auto *st = static_cast<sqlite_api::sqlite3_stmt *>(statement);
    const int scanned = sqlite_api::sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
    const int sorted = sqlite_api::sqlite3_stmt_status(st, SQLITE_STMTSTATUS_SORT, 1);
    if (scanned > 0 || sorted > 0) {
      static_cast<FullScans *>(self)->m_statements.emplace_back(sqlite_api::sqlite3_sql(st));
    }
    return 0;
  }

  sqlite_api::sqlite3 *m_db;
  std::vector<std::string> m_statements;
};

TEST_F(ProvisionQueuedTest, NoStatementOfTheDrainOrOfALookupReadsAWholeTableOrSorts) {
  // Existing customers, so that a scan has rows to step through.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(create(buyer("existing" + std::to_string(i) + "@example.com")));
  }
  FullScans scans(*m_sql);
  // Intake, the worker's claim, provisioning, completion and its attempt.
  const auto job_id = enqueue(buyer("drained@example.com"));
  enqueue(buyer("waiting@example.com")); // a backlog for the claim to order
  const auto claimed = jobs::claim(*m_sql, "worker-1", 1, lease_until());
  ASSERT_EQ(claimed.size(), 1u);
  {
    soci::transaction transaction(*m_sql);
    jobs::Provisioner provisioner(*m_sql);
    ASSERT_TRUE(provisioner.provision(claimed[0], "worker-1"));
    jobs::record_attempt(*m_sql, {job_id, 1, "worker-1", "succeeded", std::nullopt,
                                  clock::now_iso8601(), clock::now_iso8601(), 1});
    transaction.commit();
  }
  // The fallback's claim by id, and sync_direct.
  const auto fallback = enqueue(buyer("fallback@example.com"));
  EXPECT_EQ(jobs::claim_ids(*m_sql, {fallback}, "inline:test", lease_until()).size(), 1u);
  ASSERT_TRUE(create(buyer("inline@example.com")));
  // A customer's page and a resend.
  const auto account = find_user_by_email(*m_sql, "drained@example.com");
  ASSERT_TRUE(account);
  EXPECT_TRUE(find_user_by_id(*m_sql, account->id));
  EXPECT_TRUE(auth::reissue_activation(*m_sql, account->id, std::chrono::system_clock::now(), 48h));
  // The timeline's newest job of an email, a live one and a dead one.
  EXPECT_EQ(jobs::newest_job_for_email(*m_sql, "drained@example.com"), job_id);
  const auto waiting = jobs::newest_job_for_email(*m_sql, "waiting@example.com");
  ASSERT_TRUE(waiting);
  *m_sql << "UPDATE jobs SET status = 'dead', active_email = NULL WHERE id = :id",
      soci::use(static_cast<long long>(*waiting));
  EXPECT_EQ(jobs::newest_job_for_email(*m_sql, "waiting@example.com"), waiting);

  EXPECT_TRUE(scans.statements().empty()) << ::testing::PrintToString(scans.statements());
}

TEST_F(ProvisionQueuedTest, FallbackClaimByIdThenProvision) {
  const auto job_id = enqueue(buyer("fallback@example.com"));
  auto claimed = jobs::claim_ids(*m_sql, {job_id}, "inline:test", lease_until());
  ASSERT_EQ(claimed.size(), 1u);
  const auto provisioned = provision(claimed[0], "inline:test");
  ASSERT_TRUE(provisioned);
  EXPECT_EQ(status_of(job_id), "succeeded");
  // A second delivery of the same id finds nothing to take.
  EXPECT_TRUE(jobs::claim_ids(*m_sql, {job_id}, "worker-2", lease_until()).empty());
}

TEST_F(ProvisionQueuedTest, ARunAfterACrashAdoptsWhatTheFirstRunWrote) {
  // The first attempt wrote the account and the profile, then died before
  // its commit of the job: the second one ends in one account and profile.
  const auto job_id = enqueue(buyer("crash@example.com"));
  auto first = jobs::claim(*m_sql, "worker-1", 1, lease_until());
  ASSERT_EQ(first.size(), 1u);
  {
    AccountStatements accounts(*m_sql);
    const auto account = accounts.get_or_create("crash@example.com");
    accounts.insert_profile_if_absent(account.id, first[0].user, first[0].creator);
  }
  *m_sql << "UPDATE jobs SET status = 'queued', lease_owner = NULL";
  auto second = jobs::claim(*m_sql, "worker-2", 1, lease_until());
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempts, 2);
  const auto provisioned = provision(second[0], "worker-2");
  ASSERT_TRUE(provisioned);
  EXPECT_FALSE(provisioned->account_created);
  EXPECT_EQ(status_of(job_id), "succeeded");
  const std::string email = "crash@example.com";
  EXPECT_EQ(count("SELECT COUNT(*) FROM accounts WHERE email_normalized = :e", email), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM tripwire_users t JOIN accounts a ON a.id = t.user_id "
                  "WHERE a.email_normalized = :e",
                  email),
            1);
}

TEST_F(ProvisionQueuedTest, AnotherOwnersLeaseIsLeaseLost) {
  const auto job_id = enqueue(buyer("lost@example.com"));
  auto claimed = jobs::claim(*m_sql, "worker-1", 1, lease_until());
  ASSERT_EQ(claimed.size(), 1u);
  const auto provisioned = provision(claimed[0], "worker-2");
  ASSERT_FALSE(provisioned);
  EXPECT_EQ(provisioned.error(), jobs::TransitionError::lease_lost);
  EXPECT_EQ(jobs::to_error(provisioned.error()).code, "lease_lost");
  EXPECT_EQ(status_of(job_id), "running");
  const std::string email = "lost@example.com";
  EXPECT_EQ(count("SELECT COUNT(*) FROM accounts WHERE email_normalized = :e", email), 0)
      << "rolled back with the failed transition";
}

TEST_F(ProvisionQueuedTest, InlineRefusesAnExistingAccountWithoutAnActiveJob) {
  // An account whose job row is not active (written by an earlier, dead
  // job's first run): sync_direct creates accounts, it never adopts one.
  AccountStatements(*m_sql).get_or_create("orphan@example.com");
  const auto created = create(buyer("orphan@example.com"));
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, "user_exists");
  const std::string email = "orphan@example.com";
  EXPECT_EQ(count("SELECT COUNT(*) FROM jobs WHERE email_normalized = :e", email), 0);
}

TEST(InvitationState, ActivatedInvitedOrExpired) {
  const std::string now = "2026-12-02T10:00:00.000Z";
  EXPECT_EQ(invitation_state(true, std::nullopt, now), "activated");
  EXPECT_EQ(invitation_state(true, std::string("2027-01-01T00:00:00.000Z"), now), "activated");
  EXPECT_EQ(invitation_state(false, std::string("2026-12-02T10:00:00.001Z"), now), "invited");
  EXPECT_EQ(invitation_state(false, now, now), "expired") << "a token expiring now no longer works";
  EXPECT_EQ(invitation_state(false, std::string("2026-12-01T00:00:00.000Z"), now), "expired");
  EXPECT_EQ(invitation_state(false, std::nullopt, now), "expired");
}

TEST_F(ProvisionerTest, ReissueExpiresTheOldTokenAndIssuesOneThatActivates) {
  const auto created = create(buyer("resend@example.com"));
  ASSERT_TRUE(created) << created.error().detail;
  const auto now = std::chrono::system_clock::now();
  auto reissued = auth::reissue_activation(*m_sql, created->user_id, now, 48h);
  ASSERT_TRUE(reissued) << reissued.error().detail;
  EXPECT_EQ(reissued->account_id, created->user_id);
  EXPECT_EQ(reissued->email, "resend@example.com");
  EXPECT_EQ(reissued->expires_at, clock::iso8601(now + 48h));
  EXPECT_NE(reissued->token, created->activation_token);

  const auto old_hash = auth::activation_digest(created->activation_token);
  const auto new_hash = auth::activation_digest(reissued->token);
  EXPECT_FALSE(auth::find_activation(*m_sql, old_hash)) << "the old token is revoked";
  const auto found = auth::find_activation(*m_sql, new_hash);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, created->user_id);
  const auto view = find_user_by_id(*m_sql, created->user_id);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->invitation, "invited");
  EXPECT_EQ(view->activation_expires_at, reissued->expires_at);

  ASSERT_TRUE(auth::activate(*m_sql, new_hash, "argon2id-hash-placeholder"));
  const auto after = auth::reissue_activation(*m_sql, created->user_id, now, 48h);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, "already_activated");
  EXPECT_EQ(after.error().kind, ErrorKind::conflict);
  EXPECT_EQ(find_user_by_id(*m_sql, created->user_id)->invitation, "activated");
}

TEST_F(ProvisionerTest, ReissueForAnUnknownAccountIsNotFoundAndWritesNothing) {
  const auto missing =
      auth::reissue_activation(*m_sql, 424242, std::chrono::system_clock::now(), 48h);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "user_not_found");
  EXPECT_EQ(missing.error().kind, ErrorKind::not_found);
  EXPECT_EQ(count("SELECT COUNT(*) FROM activation_tokens WHERE token_hash <> :h", "-"), 0);
}

} // namespace
} // namespace usher::provisioning
