// See systemd_notify.hpp; the protocol is sd_notify(3)'s "Notes" section.
#include <usher/app/systemd_notify.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace usher::app {

bool notify_systemd(std::string_view state) {
  // NOTIFY_SOCKET is set by systemd before exec; nothing in usher calls
  // setenv, so reading it while other threads run is safe.
  const char *socket_path = std::getenv("NOTIFY_SOCKET"); // NOLINT(concurrency-mt-unsafe)
  if (socket_path == nullptr || *socket_path == '\0') return false;
  const std::string path(socket_path);

  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // "/path" is a file; "@name" an abstract socket (a leading NUL byte).
  if ((path.front() != '/' && path.front() != '@') || path.size() >= sizeof(address.sun_path)) {
    spdlog::warn("NOTIFY_SOCKET \"{}\" is not a socket path; not notifying systemd", path);
    return false;
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  if (path.front() == '@') address.sun_path[0] = '\0';
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    spdlog::warn("cannot notify systemd ({}): socket: {}", state,
                 std::error_code(errno, std::generic_category()).message());
    return false;
  }
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr *>(&address), length);
  const int send_errno = errno;
  ::close(fd);
  if (sent != static_cast<ssize_t>(state.size())) {
    spdlog::warn("cannot notify systemd ({}): {}", state,
                 std::error_code(send_errno, std::generic_category()).message());
    return false;
  }
  return true;
}

} // namespace usher::app
