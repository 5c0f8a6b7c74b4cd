// The unit tests' entry point: SQLite configured as `usher` configures it
// (cli::run), before any test opens a connection, so that every suite runs
// the connections the way production does.
#include <gtest/gtest.h>

#include <usher/store/database.hpp>

int main(int argc, char **argv) {
  if (!usher::store::configure_sqlite_process()) return 2;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
