// The precompiled header of usher_core and the targets built on it
// (USHER_PCH): third-party and standard headers only, the ones most files
// include and that cost the most to parse. Our own headers never go here: a
// change to one would rebuild everything.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>
#include <tl/expected.hpp>
