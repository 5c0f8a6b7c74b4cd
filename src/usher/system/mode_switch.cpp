#include <usher/system/mode_switch.hpp>

#include <utility>

#include <usher/store/pg_notify.hpp>

namespace usher::system {

void ModeSwitch::current(store::Completion<ModeState> done) {
  store::read_async<ModeState>(
      m_pool,
      [this](soci::session &sql) {
        const auto state = load_mode(sql);
        m_cache.set(state);
        return Result<ModeState>(state);
      },
      std::move(done));
}

void ModeSwitch::change(ModeChange change, store::Completion<ModeChangeResult> done) {
  change.instance = m_settings.instance;
  change.alerts = m_settings.alerts;
  store::write_async<ModeChangeResult>(
      m_writer,
      [change = std::move(change)](store::WriteContext &context) {
        auto result = set_mode(context.sql(), change);
        // PostgreSQL: the other instances hear it on commit (PgListener).
        if (result.changed) store::notify(context.sql(), store::k_mode_channel);
        return Result<ModeChangeResult>(std::move(result));
      },
      [this, done = std::move(done)](Result<ModeChangeResult> result) {
        if (result) {
          // Takes effect at once on this instance.
          m_cache.set(result->state);
          // With Redis: the other instances follow at once.
          if (result->changed && m_settings.announce) m_settings.announce(result->state);
        }
        done(std::move(result));
      });
}

} // namespace usher::system
