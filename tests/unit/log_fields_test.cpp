// LOG_FORMAT=json lines (src/usher/util/log_fields.cpp): one valid JSON object per
// line whatever the message or a field holds.
#include <usher/util/log_fields.hpp>

#include <mutex>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>

namespace usher::log {
namespace {

clock::WallTime at_ms(long long ms) { return clock::WallTime(std::chrono::milliseconds(ms)); }

nlohmann::json parse_line(const std::string &line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "more than one line: " << line;
  EXPECT_TRUE(nlohmann::json::accept(line)) << line;
  return nlohmann::json::parse(line, nullptr, false);
}

TEST(JsonLogLine, HasTimeLevelInstanceAndMessage) {
  const auto line = parse_line(json_line(at_ms(1'764'633'600'123), "info", "api-1", "usher stopped",
                                         nlohmann::json::object()));
  EXPECT_EQ(line["time"], "2025-12-02T00:00:00.123Z");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["instance"], "api-1");
  EXPECT_EQ(line["message"], "usher stopped");
  EXPECT_EQ(line.size(), 4U);
}

TEST(JsonLogLine, WritesTheFourMembersFirst) {
  const std::string line =
      json_line(at_ms(0), "info", "i", "m", nlohmann::json{{"alert_id", 1}, {"zeta", 2}});
  EXPECT_EQ(line.rfind(R"({"time":"1970-01-01T00:00:00.000Z","level":"info","instance":"i",)"
                       R"("message":"m",)",
                       0),
            0U)
      << line;
}

TEST(JsonLogLine, EscapesQuotesNewlinesAndControlCharacters) {
  constexpr char k_text[] = "say \"hi\"\n\\ then\r\ttab \x01\x1f end\0nul";
  const std::string message(k_text, sizeof(k_text) - 1);
  const auto line =
      parse_line(json_line(at_ms(0), "warning", "i", message, nlohmann::json::object()));
  EXPECT_EQ(line["message"].get<std::string>(), message);
}

TEST(JsonLogLine, ReplacesInvalidUtf8InMessageAndFields) {
  const std::string bad = "caf\xc3 \xff\xfe end";
  const auto line =
      parse_line(json_line(at_ms(0), "error", "inst\x80", bad, nlohmann::json{{"detail", bad}}));
  EXPECT_EQ(line["message"].get<std::string>(), "caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd end");
  EXPECT_EQ(line["instance"].get<std::string>(), "inst\xef\xbf\xbd");
  EXPECT_EQ(line["detail"].get<std::string>(), "caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd end");
}

TEST(JsonLogLine, AddsFieldsButNeverOverTheFourNames) {
  const auto line = parse_line(json_line(at_ms(0), "info", "api-1", "alert delivered",
                                         nlohmann::json{{"alert_id", 42},
                                                        {"chat_id", "-100"},
                                                        {"message", "forged"},
                                                        {"time", "forged"},
                                                        {"level", "forged"},
                                                        {"instance", "forged"}}));
  EXPECT_EQ(line["alert_id"], 42);
  EXPECT_EQ(line["chat_id"], "-100");
  EXPECT_EQ(line["message"], "alert delivered");
  EXPECT_EQ(line["time"], "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["instance"], "api-1");
}

TEST(JsonLogLine, IgnoresFieldsThatAreNotAnObject) {
  const auto line =
      parse_line(json_line(at_ms(0), "info", "i", "m", nlohmann::json::array({1, 2})));
  EXPECT_EQ(line.size(), 4U);
}

// Records what current_fields() holds while the logger hands it each message.
class FieldsSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
  std::vector<nlohmann::json> seen;

protected:
  void sink_it_(const spdlog::details::log_msg &) override { seen.push_back(current_fields()); }
  void flush_() override {}
};

TEST(WithFields, LendsTheFieldsToTheSinkForThatCallOnly) {
  const auto previous = spdlog::default_logger();
  const auto sink = std::make_shared<FieldsSink>();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("fields-test", sink));
  with_fields(spdlog::level::info, "alert delivered", {{"outbox_id", 7}, {"chat_id", "1001"}});
  spdlog::info("a plain call");
  spdlog::set_default_logger(previous);

  ASSERT_EQ(sink->seen.size(), 2U);
  EXPECT_EQ(sink->seen[0], (nlohmann::json{{"outbox_id", 7}, {"chat_id", "1001"}}));
  EXPECT_EQ(sink->seen[1], nlohmann::json::object());
  EXPECT_EQ(current_fields(), nlohmann::json::object());
}

} // namespace
} // namespace usher::log
