#include <usher/app/logging.hpp>

#include <cstdio>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <usher/util/log_fields.hpp>

namespace usher::app {
namespace {

// spdlog has no JSON sink: the line is serialised by nlohmann so every
// message is escaped correctly.
class JsonLineSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit JsonLineSink(std::string instance) : m_instance(std::move(instance)) {}

protected:
  void sink_it_(const spdlog::details::log_msg &msg) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string text = log::json_line(
        msg.time, std::string_view(level.data(), level.size()), m_instance,
        std::string_view(msg.payload.data(), msg.payload.size()), log::current_fields());
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

private:
  std::string m_instance;
};

} // namespace

void setup_logging(config::LogFormat format, const std::string &instance) {
  std::shared_ptr<spdlog::logger> logger;
  if (format == config::LogFormat::json) {
    logger = std::make_shared<spdlog::logger>("usher", std::make_shared<JsonLineSink>(instance));
  } else {
    logger = std::make_shared<spdlog::logger>("usher",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l " + instance + " %v",
                        spdlog::pattern_time_type::utc);
  }
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

} // namespace usher::app
