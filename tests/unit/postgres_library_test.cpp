// Unit tests for store/postgres_library: SOCI's PostgreSQL backend and libpq
// resolved through dlopen, the errors of libraries that are missing or are
// something else, and the SQLSTATE of a PostgreSQL error read without a
// dynamic_cast. (This test binary links the backend to make its errors.)
#include <gtest/gtest.h>

#include <soci/postgresql/soci-postgresql.h>

#include <usher/store/postgres_library.hpp>

namespace usher::store {
namespace {

TEST(PostgresLibrary, ResolvesTheBackendAndLibpq) {
  const auto opened = open_postgres_library(k_soci_postgresql_soname, k_libpq_soname);
  ASSERT_TRUE(opened) << opened.error().detail;
  ASSERT_NE(opened->factory, nullptr);
  EXPECT_NE(opened->socket, nullptr);
  EXPECT_NE(opened->notifies, nullptr);
  EXPECT_EQ(opened->socket(nullptr), -1); // libpq's answer for no connection
  const auto process = postgres_library();
  ASSERT_TRUE(process) << process.error().detail;
  EXPECT_EQ(*process, *postgres_library()); // loaded once
}

TEST(PostgresLibrary, AMissingBackendIsUnavailableAndNamed) {
  const auto opened = open_postgres_library("libusher-no-such-backend.so.0", k_libpq_soname);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind, ErrorKind::unavailable);
  EXPECT_NE(opened.error().detail.find("cannot load libusher-no-such-backend.so.0"),
            std::string::npos)
      << opened.error().detail;
}

TEST(PostgresLibrary, LibrariesWithoutTheFunctionsAreRefused) {
  // libc is loaded in every process and is neither.
  const auto not_soci = open_postgres_library("libc.so.6", k_libpq_soname);
  ASSERT_FALSE(not_soci);
  EXPECT_EQ(not_soci.error().detail,
            "libc.so.6 has no factory_postgresql: it is not SOCI's PostgreSQL backend 4.0");
  const auto not_libpq = open_postgres_library(k_soci_postgresql_soname, "libc.so.6");
  ASSERT_FALSE(not_libpq);
  EXPECT_EQ(not_libpq.error().detail, "libc.so.6 has no PQsocket: it is not libpq");
}

TEST(PostgresLibrary, SqlstateOfAPostgresError) {
  const soci::postgresql_soci_error deadlock("ERROR: deadlock detected", "40P01");
  EXPECT_EQ(postgres_sqlstate(deadlock), "40P01");
  const soci::postgresql_soci_error constraint("ERROR: duplicate key", "23505");
  EXPECT_EQ(postgres_sqlstate(constraint), "23505");
  // Not PostgreSQL's: no state, whatever the message says.
  EXPECT_EQ(postgres_sqlstate(soci::soci_error("40P01")), "");
}

} // namespace
} // namespace usher::store
