#include <usher/ui/ui.hpp>

#include <usher/ui/assets.hpp>

namespace usher::ui {
namespace {

// Hashed names never change content: a year, and no revalidation.
constexpr std::string_view k_cache_immutable = "public, max-age=31536000, immutable";
// index.html names the current hashed assets: always revalidated.
constexpr std::string_view k_cache_index = "no-cache";

constexpr std::string_view k_not_found = "not found\n";

std::vector<std::pair<std::string, std::string>> security_headers() {
  return {{"Content-Security-Policy", std::string(k_content_security_policy)},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "no-referrer"},
          {"X-Frame-Options", "DENY"},
          {"Cross-Origin-Opener-Policy", "same-origin"}};
}

} // namespace

Page page_for(std::string_view path) {
  for (const auto &asset : assets()) {
    if (asset.path != path) continue;
    Page page{200, std::string(asset.content_type), asset.body, security_headers()};
    page.headers.emplace_back("Cache-Control",
                              std::string(asset.immutable ? k_cache_immutable : k_cache_index));
    return page;
  }
  Page missing{404, "text/plain; charset=utf-8", k_not_found, security_headers()};
  missing.headers.emplace_back("Cache-Control", "no-store");
  return missing;
}

} // namespace usher::ui
