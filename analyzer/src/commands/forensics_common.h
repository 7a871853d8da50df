#pragma once
// Options and error reporting shared by `ps` and `dmesg`.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "commands/command.h"
#include "os/guest_session.h"

namespace analyzer {

struct InspectOptions {
  RecordingOptions recording;
  std::string position = "end";
  std::string profile;
  bool force = false;

  void add_to(CLI::App& command);
  GuestSessionOptions session_options() const;
};

// Runs `body` with the guest session, turning the errors a session can throw
// into a message on stderr and an exit code (docs/forensics.md).
int with_guest_session(const InspectOptions& options,
                       const std::function<int(const GuestSession&)>& body);

}  // namespace analyzer
