#include <usher/provisioning/provisioner.hpp>

#include <stdexcept>

#include <usher/util/clock.hpp>

namespace usher::provisioning {
namespace {

constexpr const char *k_insert_account =
    "INSERT INTO accounts (email, email_normalized, created_at) VALUES (:email, :norm, :now) "
    "ON CONFLICT DO NOTHING";

constexpr const char *k_select_account_id =
    "SELECT id FROM accounts WHERE email_normalized = :email";

constexpr const char *k_insert_profile =
    "INSERT INTO tripwire_users (user_id, full_name, phone, product, created_by, "
    "created_by_token_id, created_at) "
    "VALUES (:user_id, :full_name, :phone, :product, :created_by, :token_id, :now) "
    "ON CONFLICT DO NOTHING";

constexpr const char *k_insert_activation =
    "INSERT INTO activation_tokens (account_id, token_hash, expires_at, created_at) "
    "VALUES (:account_id, :hash, :expires_at, :created_at) ON CONFLICT DO NOTHING";

constexpr const char *k_select_user =
    "SELECT a.id, a.email, a.created_at, a.activated_at, t.full_name, t.phone, t.product, "
    "t.created_by, (SELECT max(v.expires_at) FROM activation_tokens v "
    "WHERE v.account_id = a.id AND v.used_at IS NULL) "
    "FROM accounts a LEFT JOIN tripwire_users t ON t.user_id = a.id ";

template <typename Key>
std::optional<UserRecord> find_user(soci::session &sql, const std::string &where, const Key &key) {
  UserRecord r;
  long long id = 0;
  std::string activated_at, full_name, phone, product, created_by, expires_at;
  soci::indicator i_act = soci::i_null, i_name = soci::i_null, i_phone = soci::i_null,
                  i_product = soci::i_null, i_by = soci::i_null, i_expires = soci::i_null;
  soci::statement st =
      (sql.prepare << std::string(k_select_user) + where, soci::use(key), soci::into(id),
       soci::into(r.email), soci::into(r.created_at), soci::into(activated_at, i_act),
       soci::into(full_name, i_name), soci::into(phone, i_phone), soci::into(product, i_product),
       soci::into(created_by, i_by), soci::into(expires_at, i_expires));
  st.execute(true);
  if (!sql.got_data()) return std::nullopt;
  r.id = id;
  auto opt = [](soci::indicator ind, std::string &value) {
    return ind == soci::i_ok ? std::optional<std::string>(std::move(value)) : std::nullopt;
  };
  r.activated_at = opt(i_act, activated_at);
  r.full_name = opt(i_name, full_name);
  r.phone = opt(i_phone, phone);
  r.product = opt(i_product, product);
  r.created_by = opt(i_by, created_by);
  r.activation_expires_at = opt(i_expires, expires_at);
  r.invitation =
      invitation_state(r.activated_at.has_value(), r.activation_expires_at, clock::now_iso8601());
  return r;
}

} // namespace

std::string invitation_state(bool activated, const std::optional<std::string> &expires_at,
                             const std::string &now) {
  if (activated) return "activated";
  // ISO 8601 UTC text compares as time (util/clock.hpp).
  if (expires_at && *expires_at > now) return "invited";
  return "expired";
}

AccountStatements::AccountStatements(soci::session &sql)
    : m_insert_account(sql), m_select_account((sql.prepare << k_select_account_id,
                                               soci::use(m_email), soci::into(m_user_id))),
      m_insert_profile((sql.prepare << k_insert_profile, soci::use(m_user_id),
                        soci::use(m_full_name), soci::use(m_phone, m_phone_ind),
                        soci::use(m_product, m_product_ind), soci::use(m_created_by),
                        soci::use(m_token_id), soci::use(m_now))),
      m_insert_activation((sql.prepare << k_insert_activation, soci::use(m_user_id),
                           soci::use(m_activation_hash), soci::use(m_activation_expires_at),
                           soci::use(m_now))) {
  auto &insert = m_insert_account.statement();
  insert.exchange(soci::use(m_email));
  insert.exchange(soci::use(m_email));
  insert.exchange(soci::use(m_now));
  m_insert_account.prepare(k_insert_account);
}

namespace {

// Runs a reused statement that returns at most one row; true when it did.
// The extra fetch() finishes the statement: a SQLite statement left open
// keeps its transaction (COMMIT fails) or its read snapshot (the connection
// stops seeing other connections' commits).
bool fetch_one(soci::statement &st) {
  if (!st.execute(true)) return false;
  st.fetch();
  return true;
}

} // namespace

AccountRef AccountStatements::get_or_create(const std::string &email) {
  m_now = clock::now_iso8601();
  m_email = email;
  if (const auto id = m_insert_account.run()) return AccountRef{*id, true};
  if (!fetch_one(m_select_account)) throw std::runtime_error("account vanished after insert");
  return AccountRef{m_user_id, false};
}

void AccountStatements::insert_profile_if_absent(std::int64_t account_id, const NewUser &user,
                                                 const Creator &creator) {
  m_now = clock::now_iso8601();
  m_user_id = account_id;
  m_full_name = user.full_name;
  m_phone = user.phone.value_or("");
  m_phone_ind = user.phone ? soci::i_ok : soci::i_null;
  m_product = user.product.value_or("");
  m_product_ind = user.product ? soci::i_ok : soci::i_null;
  m_created_by = creator.actor;
  m_token_id = creator.token_id;
  m_insert_profile.execute(true); // ON CONFLICT DO NOTHING: insert-if-absent
}

void AccountStatements::insert_activation_if_absent(std::int64_t account_id,
                                                    const std::string &hash,
                                                    const std::string &expires_at) {
  m_now = clock::now_iso8601();
  m_user_id = account_id;
  m_activation_hash = hash;
  m_activation_expires_at = expires_at;
  m_insert_activation.execute(true);
}

tl::unexpected<Error> user_exists(const std::string &email) {
  return fail(ErrorKind::conflict, "user_exists",
              "an account or a pending request already exists for " + email, "email");
}

std::optional<UserRecord> find_user_by_email(soci::session &sql,
                                             const std::string &email_normalized) {
  return find_user(sql, "WHERE a.email_normalized = :email", email_normalized);
}

std::optional<UserRecord> find_user_by_id(soci::session &sql, std::int64_t id) {
  const long long key = id;
  return find_user(sql, "WHERE a.id = :id", key);
}

bool email_taken(soci::session &sql, const std::string &email_normalized) {
  long long taken = 0;
  sql << "SELECT (SELECT COUNT(*) FROM accounts WHERE email_normalized = :a) + "
         "(SELECT COUNT(*) FROM jobs WHERE active_email = :j)",
      soci::use(email_normalized), soci::use(email_normalized), soci::into(taken);
  return taken > 0;
}

nlohmann::json UserRecord::to_json() const {
  auto nullable = [](const std::optional<std::string> &v) -> nlohmann::json {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  nlohmann::json profile = nullptr;
  if (full_name) {
    profile = {{"full_name", *full_name},
               {"phone", nullable(phone)},
               {"product", nullable(product)},
               {"created_by", nullable(created_by)}};
  }
  return {{"id", id},
          {"email", email},
          {"created_at", created_at},
          {"activated", activated_at.has_value()},
          {"activated_at", nullable(activated_at)},
          {"invitation", invitation},
          {"activation_expires_at",
           activated_at ? nlohmann::json(nullptr) : nullable(activation_expires_at)},
          {"profile", profile}};
}

} // namespace usher::provisioning
