#include <usher/util/request_id.hpp>

#include <array>

#include <sodium.h>

#include <usher/util/text.hpp>

namespace usher::request_id {
namespace {

bool allowed(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  constexpr std::string_view k_punctuation = "-_.:/+=@";
  return k_punctuation.find(c) != std::string_view::npos;
}

} // namespace

std::optional<std::string> accept(std::string_view candidate) {
  if (candidate.empty() || candidate.size() > k_max_length) return std::nullopt;
  for (const char c : candidate) {
    if (!allowed(c)) return std::nullopt;
  }
  return std::string(candidate);
}

std::string generate() {
  std::array<unsigned char, 16> raw{};
  randombytes_buf(raw.data(), raw.size());
  return text::to_hex(std::string_view(reinterpret_cast<const char *>(raw.data()), raw.size()));
}

std::string accept_or_generate(std::optional<std::string_view> candidate) {
  if (candidate) {
    if (auto id = accept(*candidate)) return std::move(*id);
  }
  return generate();
}

} // namespace usher::request_id
