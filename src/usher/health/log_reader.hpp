// The health log for callers that must not hold a database session (the
// HTTP API): health::list on the BlockingPool.
#pragma once

#include <vector>

#include <usher/health/health_log.hpp>
#include <usher/store/async.hpp>

namespace usher::health {

class LogReader {
public:
  explicit LogReader(store::BlockingPool &pool) : m_pool(pool) {}

  // Events matching `filter`, newest first.
  void list(Filter filter, store::Completion<std::vector<Event>> done);

private:
  store::BlockingPool &m_pool;
};

} // namespace usher::health
