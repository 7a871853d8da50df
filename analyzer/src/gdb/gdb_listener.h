#pragma once
// The TCP port gdb connects to ("target remote :PORT"). It listens on the
// loopback interface only: a replay debugger exposes the recorded machine's
// memory, and the protocol has no authentication.
#include <cstdint>
#include <functional>
#include <optional>

#include "gdb/gdb_connection.h"

namespace analyzer::gdb {

class GdbListener {
 public:
  // port 0 lets the kernel pick a free port; port() tells which. Throws
  // librr::SystemError naming the port.
  explicit GdbListener(uint16_t port);

  uint16_t port() const { return port_; }

  // Waits for gdb. nullopt if should_stop says so after a signal interrupted
  // the wait, or if interrupt_fd (>= 0, see GdbServerConnection) is readable. Stops listening
  // afterwards: one debugger at a time, and a second one is refused rather than left hanging.
  std::optional<UniqueFd> accept_one(const std::function<bool()>& should_stop,
                                     int interrupt_fd = -1);

 private:
  UniqueFd socket_;
  uint16_t port_ = 0;
};

}  // namespace analyzer::gdb
