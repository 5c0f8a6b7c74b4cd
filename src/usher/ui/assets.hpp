// The web UI's files, compiled into the binary (cmake/EmbedAssets.cmake
// generates assets() from src/usher/ui/assets/ at build time).
#pragma once

#include <span>
#include <string_view>

namespace usher::ui {

struct Asset {
  std::string_view path;         // "/" or "/assets/NAME.HASH.EXT"
  std::string_view content_type; // with charset for text
  std::string_view body;
  bool immutable = false; // the name carries the content's hash
};

// Every asset, index.html (path "/") among them.
std::span<const Asset> assets();

} // namespace usher::ui
