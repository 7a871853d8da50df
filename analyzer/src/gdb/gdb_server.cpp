#include "gdb/gdb_server.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "librr/error.h"
#include "librr/replayer.h"
#include "machine/vcpu_state.h"

namespace analyzer::gdb {
namespace {

// Error numbers in E replies (gdb prints them; errno values by convention).
constexpr int kErrorNotPermitted = 0x01;  // EPERM: writes to a replay
constexpr int kErrorBadAddress = 0x0e;    // EFAULT: unmapped memory
constexpr int kErrorInvalid = 0x16;       // EINVAL: unknown register
// The signal in the termination reply after a replay failure: gdb then
// prints "Program terminated with signal SIGABRT" below our explanation.
constexpr uint8_t kSignalAbort = 6;

}  // namespace

GdbServer::GdbServer(TimeTraveler& traveler, GdbServerConnection& connection)
    : traveler_(traveler), connection_(connection) {}

GdbServer::SessionEnd GdbServer::serve() {
  // gdb's Ctrl-C during a long continue stops the replay where it is.
  traveler_.set_interrupt_check([this] { return connection_.interrupt_requested(); });
  struct ForgetCheck {
    TimeTraveler& traveler;
    ~ForgetCheck() { traveler.set_interrupt_check({}); }
  } forget{traveler_};
  while (!ended_) {
    const auto request = connection_.next_request();
    if (!request) return SessionEnd::kDisconnected;
    handle_target_request(*request);
  }
  return end_;
}

MachineRegisters GdbServer::machine_registers() const {
  const vmm::VcpuState& vcpu = traveler_.vcpu();
  return {vcpu.regs, vcpu.sregs, vcpu.fpu};
}

void GdbServer::handle_target_request(const Request& request) {
  using Kind = Request::Kind;
  switch (request.kind) {
    case Kind::kStopReason:
      connection_.send_stop_reply(last_stop_);
      return;
    case Kind::kReadRegisters:
      connection_.send_reply(to_hex(all_register_bytes(machine_registers())));
      return;
    case Kind::kReadRegister: {
      const auto bytes = register_bytes(machine_registers(), static_cast<int>(request.number));
      if (!bytes)
        connection_.send_error(kErrorInvalid);
      else
        connection_.send_reply(to_hex(*bytes));
      return;
    }
    case Kind::kWriteRegisters:
    case Kind::kWriteRegister:
    case Kind::kWriteMemory:
      // The recording fixes every register and byte; changing one would
      // make the rest of the replay diverge.
      connection_.send_error(kErrorNotPermitted);
      return;
    case Kind::kReadMemory:
      read_memory(request);
      return;
    case Kind::kInsertBreakpoint:
    case Kind::kRemoveBreakpoint:
      change_breakpoint(request);
      return;
    case Kind::kStep:
    case Kind::kContinue:
    case Kind::kReverseStep:
    case Kind::kReverseContinue:
      execute(request.kind);
      return;
    case Kind::kKill:
      ended_ = true;
      end_ = SessionEnd::kKilled;
      return;  // 'k' has no reply
    case Kind::kDetach:
      connection_.send_ok();
      ended_ = true;
      end_ = SessionEnd::kDetached;
      return;
    default:
      connection_.send_reply("");
      return;
  }
}

void GdbServer::read_memory(const Request& request) {
  // Each byte is two hex digits; the reply must fit the advertised size.
  const uint64_t length = std::min<uint64_t>(request.length, (kMaxPacketBody - 1) / 2);
  std::vector<uint8_t> bytes(length);
  const size_t read = traveler_.address_space().read(request.address, bytes);
  if (read == 0 && length > 0) {
    connection_.send_error(kErrorBadAddress);
    return;
  }
  // A partial read is a valid reply: gdb asks again for the rest and gets
  // the error there.
  bytes.resize(read);
  connection_.send_reply(to_hex(bytes));
}

void GdbServer::change_breakpoint(const Request& request) {
  const bool insert = request.kind == Request::Kind::kInsertBreakpoint;
  switch (static_cast<BreakpointType>(request.number)) {
    case BreakpointType::kSoftware:
    case BreakpointType::kHardware: {
      const bool software =
          static_cast<BreakpointType>(request.number) == BreakpointType::kSoftware;
      CodeBreakpoint& breakpoint = code_breakpoints_[request.address];
      int& count = software ? breakpoint.software : breakpoint.hardware;
      count = insert ? count + 1 : std::max(0, count - 1);
      if (breakpoint.software == 0 && breakpoint.hardware == 0)
        code_breakpoints_.erase(request.address);
      connection_.send_ok();
      return;
    }
    case BreakpointType::kWriteWatch: {
      if (insert) {
        write_watchpoints_.push_back({request.address, request.length});
      } else {
        const auto it = std::find_if(
            write_watchpoints_.begin(), write_watchpoints_.end(), [&](const Watchpoint& w) {
              return w.address == request.address && w.length == request.length;
            });
        if (it != write_watchpoints_.end()) write_watchpoints_.erase(it);
      }
      connection_.send_ok();
      return;
    }
    case BreakpointType::kReadWatch:
    case BreakpointType::kAccessWatch:
      // Reads are not observable in a replay on this host (no page-protection
      // tracing of reads): an empty reply tells gdb the type is unsupported.
      connection_.send_reply("");
      return;
  }
  connection_.send_reply("");
}

Breakpoints GdbServer::breakpoints() const {
  Breakpoints result;
  for (const auto& [address, breakpoint] : code_breakpoints_) result.code.insert(address);
  result.writes = write_watchpoints_;
  return result;
}

StopReply GdbServer::stop_reply_for(const StopReason& reason) const {
  switch (reason.kind) {
    case StopReason::Kind::kStep:
      return {StopReply::Kind::kTrap};
    case StopReason::Kind::kBreakpoint: {
      const auto it = code_breakpoints_.find(reason.address);
      if (it == code_breakpoints_.end()) return {StopReply::Kind::kTrap};
      return {it->second.software > 0 ? StopReply::Kind::kSoftwareBreak
                                      : StopReply::Kind::kHardwareBreak};
    }
    case StopReason::Kind::kWatchpoint:
      return {StopReply::Kind::kWriteWatch, reason.address};
    case StopReason::Kind::kStart:
      return {StopReply::Kind::kReplayBegin};
    case StopReason::Kind::kEnd:
      return {StopReply::Kind::kReplayEnd};
    case StopReason::Kind::kInterrupted:
      return {StopReply::Kind::kInterrupted};
  }
  return {StopReply::Kind::kTrap};
}

void GdbServer::execute(Request::Kind kind) {
  if (connection_.take_interrupt_before_resume()) {
    // gdb's Ctrl-C came before this resume request: stop before moving.
    last_stop_ = {StopReply::Kind::kInterrupted};
    connection_.send_stop_reply(last_stop_);
    return;
  }
  try {
    StopReason reason;
    switch (kind) {
      case Request::Kind::kStep:
        reason = traveler_.step_instruction();
        break;
      case Request::Kind::kContinue:
        reason = traveler_.continue_forward(breakpoints());
        break;
      case Request::Kind::kReverseStep:
        reason = traveler_.reverse_step_instruction();
        break;
      default:
        reason = traveler_.reverse_continue(breakpoints());
        // The traveler stops just after the writing instruction. Going
        // backwards gdb expects to stand before it (as in rr): the watched
        // value then still differs from the one gdb last saw, so gdb reports
        // the hit instead of silently continuing further back.
        if (reason.kind == StopReason::Kind::kWatchpoint) traveler_.reverse_step_instruction();
        break;
    }
    last_stop_ = stop_reply_for(reason);
  } catch (const PositionPastEnd&) {
    last_stop_ = {StopReply::Kind::kReplayEnd};
  } catch (const librr::Divergence& divergence) {
    // The machine is in no recorded state; the message names where it left it.
    end_with_failure(divergence.what());
    return;
  } catch (const librr::Error& e) {
    // An engine error (a failed single step...): somewhere after the
    // traveler's last exact position.
    end_with_failure(fmt::format("after {}: {}", traveler_.position().to_string(), e.what()));
    return;
  }
  connection_.send_stop_reply(last_stop_);
}

void GdbServer::end_with_failure(const std::string& what) {
  failure_ = "replay failed: " + what;
  std::fprintf(stderr, "rr-analyze gdbserver: %s\n", failure_.c_str());
  connection_.send_console_output("rr-analyze: " + failure_ + "\n");
  last_stop_ = {StopReply::Kind::kTerminated, 0, kSignalAbort};
  connection_.send_stop_reply(last_stop_);
  ended_ = true;
  end_ = SessionEnd::kReplayFailed;
}

}  // namespace analyzer::gdb
