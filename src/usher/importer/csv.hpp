// A CSV reader for `usher import` (RFC 4180): fields separated by commas,
// optionally quoted with '"' (a quoted field may hold commas, line breaks
// and "" for a quote), records ended by LF or CRLF, a UTF-8 byte order mark
// at the start skipped. Bounded: a record longer than k_max_record bytes is
// an error, so a file without line ends cannot exhaust memory.
#pragma once

#include <cstddef>
#include <istream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace usher::importer {

inline constexpr std::size_t k_max_record = 64 * 1024;

// A file that is not CSV at `line` (1-based): unterminated quote, a quote
// inside an unquoted field, text after a closing quote, a record too long.
class CsvError : public std::runtime_error {
public:
  CsvError(std::size_t line, const std::string &what)
      : std::runtime_error("line " + std::to_string(line) + ": " + what), m_line(line) {}
  std::size_t line() const { return m_line; }

private:
  std::size_t m_line;
};

class CsvReader {
public:
  explicit CsvReader(std::istream &in) : m_in(in) {}

  // The next record's fields; nullopt at the end of the input. Blank lines
  // are skipped. Throws CsvError.
  std::optional<std::vector<std::string>> next();

  // The line the last record returned by next() began on (1-based).
  std::size_t line() const { return m_record_line; }

private:
  int get();

  std::istream &m_in;
  std::size_t m_line = 1;
  std::size_t m_record_line = 0;
  bool m_started = false;
};

} // namespace usher::importer
