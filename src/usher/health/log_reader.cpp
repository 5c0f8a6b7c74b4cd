#include <usher/health/log_reader.hpp>

#include <utility>

namespace usher::health {

void LogReader::list(Filter filter, store::Completion<std::vector<Event>> done) {
  store::read_async<std::vector<Event>>(
      m_pool,
      [filter = std::move(filter)](soci::session &sql) {
        return Result<std::vector<Event>>(health::list(sql, filter));
      },
      std::move(done));
}

} // namespace usher::health
