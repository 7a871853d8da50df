#pragma once
// GdbServer: answers a gdb session from a TimeTraveler (rr's GdbServer over
// its ReplayTimeline). The whole machine is one thread; registers come from
// the vCPU state at the current position, memory through the guest's page
// tables. Execution requests move the replay: forward by replaying,
// backward through checkpoints. Nothing gdb sends can change the recorded
// execution, so register and memory writes are refused.
#include <cstdint>
#include <map>

#include "gdb/gdb_connection.h"
#include "gdb/gdb_registers.h"
#include "travel/time_traveler.h"

namespace analyzer::gdb {

class GdbServer {
 public:
  enum class SessionEnd { kKilled, kDetached, kDisconnected };

  GdbServer(TimeTraveler& traveler, GdbServerConnection& connection);

  // Serves requests until gdb kills, detaches or disconnects.
  SessionEnd serve();

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
  MachineRegisters machine_registers() const;
  StopReply stop_reply_for(const StopReason& reason) const;
  Breakpoints breakpoints() const;

  TimeTraveler& traveler_;
  GdbServerConnection& connection_;
  std::map<uint64_t, CodeBreakpoint> code_breakpoints_;
  std::vector<Watchpoint> write_watchpoints_;
  StopReply last_stop_;
  bool ended_ = false;
  SessionEnd end_ = SessionEnd::kDisconnected;
};

}  // namespace analyzer::gdb
