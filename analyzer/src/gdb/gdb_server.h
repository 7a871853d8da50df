#pragma once
// GdbServer: answers a gdb session from a TimeTraveler (rr's GdbServer over
// its ReplayTimeline). The whole machine is one thread; registers come from
// the vCPU state at the current position, memory through the guest's page
// tables. Execution requests move the replay: forward by replaying,
// backward through checkpoints. Nothing gdb sends can change the recorded
// execution, so register and memory writes are refused.
#include <cstdint>
#include <map>
#include <string>

#include "gdb/gdb_connection.h"
#include "gdb/gdb_registers.h"
#include "travel/time_traveler.h"

namespace analyzer::gdb {

class GdbServer {
 public:
  // kReplayFailed: the replay diverged from the recording or the engine
  // failed; gdb was told why and the session ended (failure() says why).
  enum class SessionEnd { kKilled, kDetached, kDisconnected, kReplayFailed };

  GdbServer(TimeTraveler& traveler, GdbServerConnection& connection);

  // Serves requests until gdb kills, detaches or disconnects, or the
  // replay fails.
  SessionEnd serve();
  // After kReplayFailed: where and why, as reported to gdb and on stderr.
  const std::string& failure() const { return failure_; }

 private:
  // Software and hardware breakpoints are both implemented by the replay
  // engine (no guest memory is patched); the type is kept only so the stop
  // reply says which one gdb inserted.
  struct CodeBreakpoint {
    int software = 0;
    int hardware = 0;
  };

  void handle_target_request(const Request& request);
  void read_memory(const Request& request);
  void change_breakpoint(const Request& request);
  void execute(Request::Kind kind);
  // Reports a replay failure once (gdb's console, stderr) and ends the
  // session with a termination stop reply: every later request would fail
  // the same way.
  void end_with_failure(const std::string& what);
  MachineRegisters machine_registers() const;
  StopReply stop_reply_for(const StopReason& reason) const;
  Breakpoints breakpoints() const;

  TimeTraveler& traveler_;
  GdbServerConnection& connection_;
  std::map<uint64_t, CodeBreakpoint> code_breakpoints_;
  std::vector<Watchpoint> write_watchpoints_;
  StopReply last_stop_;
  std::string failure_;
  bool ended_ = false;
  SessionEnd end_ = SessionEnd::kDisconnected;
};

}  // namespace analyzer::gdb
