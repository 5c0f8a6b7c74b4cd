// Unit tests for `usher import`'s CSV reader and header (importer/csv.hpp,
// importer/import.hpp) and its dry run, which validates without an intake.
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <usher/importer/csv.hpp>
#include <usher/importer/import.hpp>

namespace usher::importer {
namespace importer_test {

using Records = std::vector<std::vector<std::string>>;

Records read_all(const std::string &text) {
  std::istringstream in(text);
  CsvReader reader(in);
  Records records;
  while (auto record = reader.next()) records.push_back(*record);
  return records;
}

TEST(CsvReader, ReadsPlainAndQuotedFieldsWithLfAndCrlf) {
  EXPECT_EQ(read_all("a,b,c\n1,,3\r\n"), (Records{{"a", "b", "c"}, {"1", "", "3"}}));
  EXPECT_EQ(read_all("\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\n"),
            (Records{{"x, y", "say \"hi\"", "two\nlines"}}));
  EXPECT_EQ(read_all("last,line,without,end"), (Records{{"last", "line", "without", "end"}}));
  EXPECT_EQ(read_all("a,\n"), (Records{{"a", ""}}));
}

TEST(CsvReader, SkipsABomAndBlankLinesAndCountsLines) {
  std::istringstream in("\xEF\xBB\xBF"
                        "email\n\n\r\nann@example.com\n\"multi\nline\"\nzed\n");
  CsvReader reader(in);
  std::vector<std::size_t> lines;
  Records records;
  while (auto record = reader.next()) {
    records.push_back(*record);
    lines.push_back(reader.line());
  }
  EXPECT_EQ(records, (Records{{"email"}, {"ann@example.com"}, {"multi\nline"}, {"zed"}}));
  EXPECT_EQ(lines, (std::vector<std::size_t>{1, 4, 5, 7}));
}

TEST(CsvReader, RejectsWhatIsNotCsvNamingTheLine) {
  const std::vector<std::pair<std::string, std::size_t>> bad = {
      {"a,b\n\"open,c\n", 2}, {"a\nx\"y\n", 2}, {"\"q\"tail\n", 1}};
  for (const auto &[text, line] : bad) {
    std::istringstream in(text);
    CsvReader reader(in);
    try {
      while (reader.next()) {
      }
      ADD_FAILURE() << "no error for " << text;
    } catch (const CsvError &e) {
      EXPECT_EQ(e.line(), line) << text << ": " << e.what();
    }
  }
}

TEST(CsvReader, ARecordPastTheBoundIsAnError) {
  std::istringstream in(std::string(k_max_record + 1, 'x'));
  CsvReader reader(in);
  EXPECT_THROW(reader.next(), CsvError);
  std::istringstream fits(std::string(k_max_record, 'x'));
  CsvReader ok(fits);
  EXPECT_EQ(ok.next()->at(0).size(), k_max_record);
}

TEST(ImportHeader, NamesColumnsInAnyOrderAndRefusesUnknownOnes) {
  auto columns = parse_header({" Product ", "FULL_NAME", "email"});
  ASSERT_TRUE(columns) << columns.error().detail;
  EXPECT_EQ(columns->count, 3u);
  EXPECT_EQ(columns->email, 2u);
  EXPECT_EQ(columns->full_name, 1u);
  EXPECT_EQ(columns->product, 0u);
  EXPECT_FALSE(columns->phone.has_value());

  EXPECT_EQ(parse_header({"email", "full_name", "phone_number"}).error().code, "unknown_column");
  EXPECT_EQ(parse_header({"email", "phone"}).error().code, "missing_column");
  EXPECT_EQ(parse_header({"email", "full_name", "Email"}).error().code, "duplicate_column");
}

TEST(ImportKey, TheSameEmailAlwaysGetsTheSameVisibleAsciiKey) {
  const auto key = row_key("ann@example.com");
  EXPECT_EQ(key, row_key("ann@example.com"));
  EXPECT_NE(key, row_key("bob@example.com"));
  EXPECT_EQ(key.rfind("import:", 0), 0u);
  EXPECT_LE(key.size(), 255u);
}

TEST(ImportDryRun, ClassifiesEveryRowWithoutAnIntake) {
  std::istringstream in("email,full_name,phone,product\n"
                        "ann@example.com,Ann,,\n"
                        "old@example.com,Old Buyer,,\n"
                        "not-an-email,X,,\n"
                        "ANN@example.com,Ann again,,\n"
                        "short@example.com,Short,1,2,3\n"
                        "nameless@example.com,,,\n");
  CsvReader reader(in);
  const auto columns = parse_header(*reader.next());
  ASSERT_TRUE(columns);
  std::set<std::string> asked;
  Options options;
  const auto summary = run(
      reader, *columns, nullptr,
      [&asked](const std::string &email) {
        asked.insert(email);
        return email == "old@example.com";
      },
      options);
  EXPECT_EQ(summary.rows, 6u);
  EXPECT_EQ(summary.created, 1u) << "would be new";
  EXPECT_EQ(summary.existed, 1u);
  EXPECT_EQ(summary.queued, 0u);
  EXPECT_EQ(summary.rejected, 4u);
  ASSERT_EQ(summary.rejects.size(), 4u);
  EXPECT_EQ(summary.rejects[0].line, 4u);
  EXPECT_EQ(summary.rejects[0].code, "email_invalid");
  EXPECT_EQ(summary.rejects[1].line, 5u);
  EXPECT_EQ(summary.rejects[1].code, "duplicate_in_file");
  EXPECT_EQ(summary.rejects[1].reason, "the same email as line 2");
  EXPECT_EQ(summary.rejects[2].code, "field_count");
  EXPECT_EQ(summary.rejects[3].code, "field_length");
  EXPECT_EQ(summary.rejects[3].email, "nameless@example.com");
  EXPECT_EQ(asked, (std::set<std::string>{"ann@example.com", "old@example.com"}));
}

} // namespace importer_test
} // namespace usher::importer
