#pragma once
// The rr-gateway process: capture rings, classifier and frame log driven by
// one Boost.Asio event loop, plus signals and the announcement socket.
// Runs in the foreground and logs to stderr (systemd style).
#include <cstdint>
#include <functional>
#include <memory>

#include "config.h"

namespace gateway {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitConfigError = 2;
inline constexpr int kExitWriteError = 3;  // logging stopped: disk full or I/O error
inline constexpr int kExitCaptureError = 4;

// Name of the marker file written next to the segments when logging stops on an error.
inline constexpr const char* kStoppedMarker = "LOGGING-STOPPED";

class GatewayDaemon {
 public:
  // `load_config` is called at start and again on SIGHUP.
  explicit GatewayDaemon(std::function<GatewayConfig()> load_config);
  ~GatewayDaemon();
  GatewayDaemon(const GatewayDaemon&) = delete;
  GatewayDaemon& operator=(const GatewayDaemon&) = delete;
  // Runs until SIGTERM/SIGINT (returns kExitOk) or a fatal error.
  int run();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace gateway
