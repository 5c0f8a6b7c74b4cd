#include <usher/store/pg_notify.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <stdexcept>

#include <soci/postgresql/soci-postgresql.h>
#include <spdlog/spdlog.h>

#include <usher/store/postgres_library.hpp>

namespace usher::store {
namespace {

// A poll's longest wait: stop() wakes it at once; this bounds how long a
// stop is missed if the wake-up could not be created or written.
constexpr auto k_poll_slice = std::chrono::milliseconds(200);

PGconn *pg_connection(soci::session &sql) {
  auto *base = sql.get_backend();
  if (base == nullptr || base->get_backend_name() != "postgresql") return nullptr;
  return static_cast<soci::postgresql_session_backend *>(base)->conn_;
}

} // namespace

void notify(soci::session &sql, const char *channel) {
  if (pg_connection(sql) == nullptr) return;
  const std::string name = channel;
  sql << "SELECT pg_notify(:channel, '')", soci::use(name);
}

void CoalescedNotify::operator()() const {
  if (m_pending->exchange(true)) return; // one is already waiting for the writer
  auto pending = m_pending;
  const char *channel = m_channel;
  const bool queued = m_writer->submit(
      [pending, channel](WriteContext &context) {
        pending->store(false); // a dispatch from now on needs a notification of its own
        notify(context.sql(), channel);
      },
      [pending](const Result<void> &) {});
  if (!queued) m_pending->store(false);
}

PgListener::PgListener(const Database &db, std::vector<std::string> channels, OnNotify on_notify,
                       std::function<void()> on_reconnect)
    : m_db(db), m_channels(std::move(channels)), m_on_notify(std::move(on_notify)),
      m_on_reconnect(std::move(on_reconnect)), m_stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
}

PgListener::~PgListener() {
  stop();
  if (m_stop_fd >= 0) ::close(m_stop_fd);
}

void PgListener::start() {
  if (!m_thread.joinable()) m_thread = std::thread([this] { run(); });
}

void PgListener::stop() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping.store(true);
  }
  m_wake.notify_all();
  if (m_stop_fd >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(m_stop_fd, &one, sizeof one);
  }
  if (m_thread.joinable()) m_thread.join();
}

bool PgListener::pause(std::chrono::milliseconds how_long) {
  std::unique_lock lock(m_mutex);
  return !m_wake.wait_for(lock, how_long, [this] { return m_stopping.load(); });
}

void PgListener::run() {
  std::unique_ptr<soci::session> sql;
  bool lost = false;
  auto next_ping = std::chrono::steady_clock::now() + k_ping;
  while (!m_stopping.load()) {
    try {
      if (!sql) {
        sql = m_db.connect();
        {
          auto stall = m_db.guard(*sql, m_db.request_stall_limit());
          for (const auto &channel : m_channels) *sql << "LISTEN " + channel;
        }
        spdlog::info(lost ? "database notifications: listening again"
                          : "database notifications: listening");
        if (m_on_reconnect) m_on_reconnect();
        lost = false;
        next_ping = std::chrono::steady_clock::now() + k_ping;
      }
      PGconn *conn = pg_connection(*sql);
      if (conn == nullptr) throw std::runtime_error("not a PostgreSQL session");
      // A PostgreSQL session exists: the library is loaded.
      const auto postgres = postgres_library();
      if (!postgres) throw std::runtime_error(postgres.error().detail);
      const PostgresLibrary &pq = **postgres;
      std::array<pollfd, 2> wait{pollfd{pq.socket(conn), POLLIN, 0}, pollfd{m_stop_fd, POLLIN, 0}};
      const int ready =
          ::poll(wait.data(), m_stop_fd >= 0 ? 2 : 1, static_cast<int>(k_poll_slice.count()));
      if (ready < 0 && errno != EINTR) throw std::runtime_error("poll failed on the connection");
      if (m_stopping.load()) break;
      if (ready > 0 && (wait[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0 &&
          pq.consume_input(conn) == 0) {
        throw std::runtime_error(std::string("connection lost: ") + pq.error_message(conn));
      }
      while (PGnotify *note = pq.notifies(conn)) {
        const std::string channel = note->relname;
        pq.freemem(note);
        m_on_notify(channel);
      }
      if (std::chrono::steady_clock::now() >= next_ping) {
        auto stall = m_db.guard(*sql, m_db.request_stall_limit());
        ping(*sql);
        next_ping = std::chrono::steady_clock::now() + k_ping;
      }
    } catch (const std::exception &e) {
      if (!lost) spdlog::warn("database notifications: {} (reconnecting)", e.what());
      lost = true;
      sql.reset();
      if (!pause(k_retry)) break;
    }
  }
}

} // namespace usher::store
