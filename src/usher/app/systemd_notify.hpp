// The sd_notify protocol by hand (no libsystemd): under a unit with
// Type=notify, systemd passes NOTIFY_SOCKET, a unix datagram socket, and
// waits for "READY=1" before it counts the service as started; "STOPPING=1"
// says a shutdown has begun (docs/operations.md).
#pragma once

#include <string_view>

namespace usher::app {

// Sends `state` (for example "READY=1") to $NOTIFY_SOCKET. Does nothing and
// returns false when the variable is unset (not started by systemd) or the
// datagram cannot be sent; a failure is logged, never fatal.
bool notify_systemd(std::string_view state);

} // namespace usher::app
