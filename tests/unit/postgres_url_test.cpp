// Unit tests for util/postgres_url: DATABASE_URL to libpq conninfo, and the
// password never appearing in an error or a redacted URL.
#include <gtest/gtest.h>

#include <string>

#include <usher/util/postgres_url.hpp>

namespace usher::postgres_url {

TEST(PostgresUrl, EveryPartBecomesAConninfoKeyword) {
  auto conninfo = to_conninfo("postgresql://usher:s3cret@db.example:6432/usher_prod", 7);
  ASSERT_TRUE(conninfo) << conninfo.error().detail;
  EXPECT_EQ(*conninfo, "host='db.example' port='6432' user='usher' password='s3cret' "
                       "dbname='usher_prod' connect_timeout='7'");
}

TEST(PostgresUrl, PercentEscapesAreDecodedAndQuotesEscaped) {
  auto conninfo = to_conninfo("postgres://us%40er:p%40ss%27w%5Cd%3A@h/d%20b");
  ASSERT_TRUE(conninfo) << conninfo.error().detail;
  EXPECT_EQ(*conninfo, "host='h' user='us@er' password='p@ss\\'w\\\\d:' dbname='d b' "
                       "connect_timeout='10'");
}

TEST(PostgresUrl, QueryParametersPassThroughAndConnectTimeoutIsKept) {
  auto conninfo = to_conninfo(
      "postgresql://u@h:5432/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3");
  ASSERT_TRUE(conninfo) << conninfo.error().detail;
  EXPECT_EQ(*conninfo, "host='h' port='5432' user='u' dbname='d' sslmode='verify-full' "
                       "sslrootcert='/etc/ca.pem' connect_timeout='3'");
}

TEST(PostgresUrl, IPv6HostsAndMissingPartsAreAccepted) {
  auto conninfo = to_conninfo("postgresql://[::1]:5433/d", 0);
  ASSERT_TRUE(conninfo) << conninfo.error().detail;
  EXPECT_EQ(*conninfo, "host='::1' port='5433' dbname='d'");
  auto bare = to_conninfo("postgresql://", 0);
  ASSERT_TRUE(bare);
  EXPECT_EQ(*bare, "");
}

TEST(PostgresUrl, MalformedUrlsAreRefusedWithoutThePassword) {
  for (const std::string url :
       {"postgresql://u:hunter2@h:port/d", "postgresql://u:hunter2@h:70000/d",
        "postgresql://u:hunter2%zz@h/d", "postgresql://u:hunter2@h/d?sslmode",
        "postgresql://u:hunter2@h/d?ssl mode=x", "postgresql://u:hun/ter2@h/d",
        "postgresql://u:hun?ter2@h/d", "mysql://u:hunter2@h/d"}) {
    auto conninfo = to_conninfo(url);
    ASSERT_FALSE(conninfo) << url;
    EXPECT_EQ(conninfo.error().detail.find("hunter2"), std::string::npos) << url;
  }
}

TEST(PostgresUrl, RedactedHidesPasswordsOnly) {
  EXPECT_EQ(redacted("postgresql://u:hunter2@h:5432/d?sslmode=require"),
            "postgresql://u:***@h:5432/d?sslmode=require");
  EXPECT_EQ(redacted("postgresql://u@h/d?password=hunter2&sslmode=require"),
            "postgresql://u@h/d?password=***&sslmode=require");
  EXPECT_EQ(redacted("postgresql://h/d"), "postgresql://h/d");
  EXPECT_EQ(redacted("postgresql://u:p%40ss@h/d"), "postgresql://u:***@h/d");
  // unencoded separators in the password, and schemes usher refuses
  EXPECT_EQ(redacted("postgresql://u:/x?y@h/d"), "postgresql://u:***@h/d");
  EXPECT_EQ(redacted("postgresql://u:a@b@h/d"), "postgresql://u:***@h/d");
  EXPECT_EQ(redacted("mysql://u:hunter2@h/d"), "mysql://u:***@h/d");
}

} // namespace usher::postgres_url
