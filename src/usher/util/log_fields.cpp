#include <usher/util/log_fields.hpp>

#include <array>

namespace usher::log {
namespace {

constexpr std::array<std::string_view, 4> k_reserved_names = {"time", "level", "instance",
                                                              "message"};

// spdlog 1.10's messages carry no fields, and its synchronous logger calls the
// sink on the calling thread, so with_fields() lends the sink its fields
// through this pointer for exactly the length of that one call.
thread_local const nlohmann::json *lent_fields = nullptr;

bool reserved(const std::string &name) {
  for (const auto reserved_name : k_reserved_names) {
    if (name == reserved_name) return true;
  }
  return false;
}

} // namespace

std::string json_line(clock::WallTime time, std::string_view level, std::string_view instance,
                      std::string_view message, const nlohmann::json &fields) {
  // Ordered: the four members first, then the fields, as a reader expects.
  nlohmann::ordered_json line = {{"time", clock::iso8601(time)},
                                 {"level", std::string(level)},
                                 {"instance", std::string(instance)},
                                 {"message", std::string(message)}};
  if (fields.is_object()) {
    for (const auto &[name, value] : fields.items()) {
      if (!reserved(name)) line[name] = nlohmann::ordered_json(value);
    }
  }
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

void with_fields(spdlog::level::level_enum level, std::string_view message,
                 const nlohmann::json &fields) {
  const nlohmann::json *const outer = lent_fields;
  lent_fields = &fields;
  try {
    spdlog::default_logger_raw()->log(level, "{}", message);
  } catch (...) {
    lent_fields = outer;
    throw;
  }
  lent_fields = outer;
}

const nlohmann::json &current_fields() {
  static const nlohmann::json k_none = nlohmann::json::object();
  return lent_fields != nullptr ? *lent_fields : k_none;
}

} // namespace usher::log
