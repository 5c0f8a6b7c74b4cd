#include <usher/importer/csv.hpp>

namespace usher::importer {

int CsvReader::get() {
  const int c = m_in.get();
  if (c == '\n') ++m_line;
  return c;
}

std::optional<std::vector<std::string>> CsvReader::next() {
  if (!m_started) {
    m_started = true;
    // A UTF-8 byte order mark, as spreadsheet programs write it.
    if (m_in.peek() == 0xEF) {
      char bom[3] = {};
      m_in.read(bom, 3);
      if (m_in.gcount() != 3 || bom[1] != '\xBB' || bom[2] != '\xBF') {
        m_in.clear();
        m_in.seekg(0);
      }
    }
  }
  for (;;) {
    std::vector<std::string> fields;
    std::string field;
    std::size_t size = 0;
    bool quoted = false;     // inside a quoted field
    bool was_quoted = false; // the current field was quoted (closed)
    bool any = false;        // something of this record was read
    m_record_line = m_line;
    for (;;) {
      const int c = get();
      if (c == std::char_traits<char>::eof()) {
        if (quoted) throw CsvError(m_record_line, "a quoted field is not closed");
        if (!any) return std::nullopt;
        fields.push_back(std::move(field));
        return fields;
      }
      any = true;
      if (++size > k_max_record) {
        throw CsvError(m_record_line,
                       "a record is longer than " + std::to_string(k_max_record) + " bytes");
      }
      if (quoted) {
        if (c == '"') {
          if (m_in.peek() == '"') {
            get();
            field.push_back('"');
          } else {
            quoted = false;
            was_quoted = true;
          }
        } else {
          field.push_back(static_cast<char>(c));
        }
        continue;
      }
      if (c == ',') {
        fields.push_back(std::move(field));
        field.clear();
        was_quoted = false;
      } else if (c == '\n' || c == '\r') {
        if (c == '\r' && m_in.peek() == '\n') get();
        if (fields.empty() && field.empty() && !was_quoted) break; // a blank line
        fields.push_back(std::move(field));
        return fields;
      } else if (c == '"') {
        if (!field.empty() || was_quoted) {
          throw CsvError(m_record_line, "a quote inside an unquoted field (quote the whole field)");
        }
        quoted = true;
      } else {
        if (was_quoted) throw CsvError(m_record_line, "text after a closing quote");
        field.push_back(static_cast<char>(c));
      }
    }
  }
}

} // namespace usher::importer
