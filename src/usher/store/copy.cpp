#include <usher/store/copy.hpp>

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include <usher/store/migrations.hpp>

namespace usher::store {
namespace {

// Parents before children (the foreign keys of the schema, SPEC §4): a
// table not named here (a later migration's) is copied after these, and
// must then be added here when it references another.
const std::vector<std::string> &copy_order() {
  static const std::vector<std::string> k_order = {
      "accounts",      "tripwire_users",   "activation_tokens",  "sessions",     "api_tokens",
      "system_config", "idempotency_keys", "system_health_logs", "alert_outbox", "alert_conditions",
      "jobs",          "job_attempts",     "webhook_outbox"};
  return k_order;
}

// Rows a fresh database's migrations write themselves (the initial mode):
// replaced by the source's rows rather than counted as data.
bool seeded_by_migrations(const std::string &table) { return table == "system_config"; }

std::string quoted(const std::string &name) { return "\"" + name + "\""; }

std::set<std::string> sqlite_tables(soci::session &sql) {
  std::set<std::string> tables;
  std::string name;
  soci::statement st =
      (sql.prepare << "SELECT name FROM sqlite_master WHERE type = 'table' "
                      "AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'",
       soci::into(name));
  st.execute();
  while (st.fetch()) tables.insert(name);
  return tables;
}

std::set<std::string> postgres_tables(soci::session &sql) {
  std::set<std::string> tables;
  std::string name;
  soci::statement st =
      (sql.prepare << "SELECT table_name FROM information_schema.tables "
                      "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                      "AND table_name <> 'schema_migrations'",
       soci::into(name));
  st.execute();
  while (st.fetch()) tables.insert(name);
  return tables;
}

std::vector<std::string> sqlite_columns(soci::session &sql, const std::string &table) {
  std::vector<std::string> columns;
  std::string name;
  soci::statement st = (sql.prepare << "SELECT name FROM pragma_table_info(:t) ORDER BY cid",
                        soci::use(table), soci::into(name));
  st.execute();
  while (st.fetch()) columns.push_back(name);
  return columns;
}

std::set<std::string> postgres_columns(soci::session &sql, const std::string &table) {
  std::set<std::string> columns;
  std::string name;
  soci::statement st = (sql.prepare << "SELECT column_name FROM information_schema.columns "
                                       "WHERE table_schema = current_schema() AND table_name = :t",
                        soci::use(table), soci::into(name));
  st.execute();
  while (st.fetch()) columns.insert(name);
  return columns;
}

std::int64_t count_rows(soci::session &sql, const std::string &table) {
  long long rows = 0;
  sql << "SELECT COUNT(*) FROM " + quoted(table), soci::into(rows);
  return rows;
}

std::vector<std::string> ordered(const std::set<std::string> &tables) {
  std::vector<std::string> result;
  for (const auto &table : copy_order()) {
    if (tables.count(table) != 0) result.push_back(table);
  }
  for (const auto &table : tables) {
    if (std::find(result.begin(), result.end(), table) == result.end()) result.push_back(table);
  }
  return result;
}

// Every column as text (NULL stays NULL): SQLite's integers become their
// decimal digits, which PostgreSQL reads into its INTEGER and BIGINT columns.
std::int64_t copy_table(soci::session &from, soci::session &to, const std::string &table,
                        const std::vector<std::string> &columns) {
  std::string select = "SELECT ";
  std::string insert = "INSERT INTO " + quoted(table) + " (";
  std::string values = ") VALUES (";
  for (std::size_t i = 0; i < columns.size(); ++i) {
    const std::string sep = i == 0 ? "" : ", ";
    select += sep + "CAST(" + quoted(columns[i]) + " AS TEXT)";
    insert += sep + quoted(columns[i]);
    values += sep + ":p" + std::to_string(i);
  }
  select += " FROM " + quoted(table) + " ORDER BY rowid";
  insert += values + ")";

  std::vector<std::string> fields(columns.size());
  std::vector<soci::indicator> nulls(columns.size(), soci::i_ok);
  soci::statement read(from);
  for (std::size_t i = 0; i < columns.size(); ++i) read.exchange(soci::into(fields[i], nulls[i]));
  read.alloc();
  read.prepare(select);
  read.define_and_bind();

  soci::statement write(to);
  for (std::size_t i = 0; i < columns.size(); ++i) write.exchange(soci::use(fields[i], nulls[i]));
  write.alloc();
  write.prepare(insert);
  write.define_and_bind();

  std::int64_t rows = 0;
  read.execute();
  while (read.fetch()) {
    write.execute(true);
    ++rows;
  }
  return rows;
}

// Moves the identity sequence of `table`'s id past the copied ids.
void move_sequence(soci::session &to, const std::string &table) {
  const std::string name = quoted(table);
  std::string sequence;
  soci::indicator has_sequence = soci::i_null;
  to << "SELECT pg_get_serial_sequence(:t, 'id')", soci::use(name),
      soci::into(sequence, has_sequence);
  if (has_sequence != soci::i_ok) return;
  to << "SELECT setval(:s, (SELECT COALESCE(MAX(id), 0) FROM " + quoted(table) + ") + 1, false)",
      soci::use(sequence);
}

} // namespace

std::int64_t CopySummary::rows() const {
  std::int64_t total = 0;
  for (const auto &table : tables) total += table.rows;
  return total;
}

Result<CopySummary> copy_database(
    const Database &from, const Database &to,
    const std::function<void(const std::string &, std::int64_t)> &progress) {
  if (from.dialect() != Dialect::sqlite || to.dialect() != Dialect::postgresql) {
    return fail(ErrorKind::invalid, "unsupported_copy",
                "migrate-data copies an SQLite database (--from sqlite:PATH) into PostgreSQL "
                "(--to postgresql://...)");
  }
  try {
    // The target first: an unreachable one fails before the source is touched.
    auto target = to.connect();
    auto source = from.connect();
    migrate(*source, from.dialect());
    migrate(*target, to.dialect());

    const auto source_tables = sqlite_tables(*source);
    const auto target_tables = postgres_tables(*target);
    for (const auto &table : source_tables) {
      if (target_tables.count(table) == 0) {
        return fail(ErrorKind::conflict, "schema_differs",
                    fmt::format("the target has no table {} (is it usher's database?)", table));
      }
    }
    for (const auto &table : target_tables) {
      if (source_tables.count(table) == 0) {
        return fail(ErrorKind::conflict, "schema_differs",
                    fmt::format("the source has no table {} (is it usher's database?)", table));
      }
    }

    soci::transaction reading(*source); // one snapshot of every table
    soci::transaction writing(*target); // all or nothing
    std::map<std::string, std::vector<std::string>> columns;
    std::map<std::string, bool> ids; // the table has an id column (maybe an identity)
    for (const auto &table : ordered(source_tables)) {
      if (!seeded_by_migrations(table)) {
        if (const auto rows = count_rows(*target, table); rows > 0) {
          return fail(ErrorKind::conflict, "target_not_empty",
                      fmt::format("the target already holds data ({} rows in {}): migrate-data "
                                  "copies into a new, empty database only",
                                  rows, table));
        }
      }
      columns[table] = sqlite_columns(*source, table);
      const auto target_columns = postgres_columns(*target, table);
      ids[table] = target_columns.count("id") != 0;
      for (const auto &column : columns[table]) {
        if (target_columns.count(column) == 0) {
          return fail(ErrorKind::conflict, "schema_differs",
                      fmt::format("the target's table {} has no column {}", table, column));
        }
      }
    }

    CopySummary summary;
    for (const auto &table : ordered(source_tables)) {
      if (seeded_by_migrations(table)) *target << "DELETE FROM " + quoted(table);
      const auto copied = copy_table(*source, *target, table, columns[table]);
      if (ids[table]) move_sequence(*target, table);
      const auto in_source = count_rows(*source, table);
      const auto in_target = count_rows(*target, table);
      if (copied != in_source || in_target != in_source) {
        return fail(ErrorKind::internal, "count_mismatch",
                    fmt::format("{}: {} rows in the source, {} copied, {} in the target; nothing "
                                "was committed",
                                table, in_source, copied, in_target));
      }
      summary.tables.push_back({table, copied});
      if (progress) progress(table, copied);
    }
    writing.commit();
    reading.rollback();
    return summary;
  } catch (const std::exception &e) {
    return fail(ErrorKind::unavailable, "copy_failed",
                std::string("the copy failed and nothing was committed: ") + e.what());
  }
}

} // namespace usher::store
