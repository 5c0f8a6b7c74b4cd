// The kill switch for callers that must not hold a database session (the
// HTTP API): reads the stored mode and changes it, on the BlockingPool and
// the WriteBatcher, and keeps this instance's ModeCache and the other
// instances (NOTIFY on PostgreSQL, `announce` for Redis) in step.
#pragma once

#include <functional>
#include <string>

#include <usher/store/async.hpp>
#include <usher/system/mode_cache.hpp>
#include <usher/system/system_mode.hpp>

namespace usher::alerts {
struct AlertPolicy;
}

namespace usher::system {

struct ModeSwitchSettings {
  std::string instance;                        // where changes are made
  const alerts::AlertPolicy *alerts = nullptr; // switches alert through it (null: logged only)
  // Told after a change committed (with Redis: publishes it to the others).
  std::function<void(const ModeState &)> announce;
};

class ModeSwitch {
public:
  ModeSwitch(store::BlockingPool &pool, store::WriteBatcher &writer, ModeCache &cache,
             ModeSwitchSettings settings)
      : m_pool(pool), m_writer(writer), m_cache(cache), m_settings(std::move(settings)) {}

  // The stored mode; the cache takes it too.
  void current(store::Completion<ModeState> done);
  // Applies `change` (its actor set by the caller; instance and alerts are
  // this switch's). A change takes effect at once on this instance and is
  // announced to the others.
  void change(ModeChange change, store::Completion<ModeChangeResult> done);

private:
  store::BlockingPool &m_pool;
  store::WriteBatcher &m_writer;
  ModeCache &m_cache;
  ModeSwitchSettings m_settings;
};

} // namespace usher::system
