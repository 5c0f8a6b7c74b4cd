// Fuzzes `usher import`'s CSV reader (importer::CsvReader) and its header
// check: any bytes give records or a CsvError, never a crash, a hang or a
// record past the bound.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include <usher/importer/csv.hpp>
#include <usher/importer/import.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace usher;
  std::istringstream in(std::string(fuzz::as_text(data, size)));
  importer::CsvReader reader(in);
  try {
    bool first = true;
    while (auto record = reader.next()) {
      std::size_t bytes = 0;
      for (const auto &field : *record) bytes += field.size();
      if (bytes > importer::k_max_record || bytes > size) __builtin_trap();
      if (reader.line() == 0) __builtin_trap();
      if (first) {
        first = false;
        if (auto columns = importer::parse_header(*record)) {
          if (columns->email >= record->size() || columns->full_name >= record->size()) {
            __builtin_trap();
          }
        }
      }
    }
  } catch (const importer::CsvError &e) {
    if (e.line() == 0) __builtin_trap();
  }
  return 0;
}
