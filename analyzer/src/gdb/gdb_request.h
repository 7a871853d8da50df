#pragma once
// GDB remote serial protocol: packet bodies parsed into requests, and the
// replies that carry structure (stop replies). Pure functions, no I/O: the
// connection (gdb_connection.h) feeds them and the fuzzer
// (fuzz/analyzer_gdb_packet.cpp) hammers them.
#include <cstdint>
#include <string>
#include <string_view>

namespace analyzer::gdb {

struct Request {
  enum class Kind {
    kUnknown,    // not a packet we implement: the reply is empty
    kMalformed,  // a packet we implement, with bad arguments: reply E01
    // Session and queries, answered by the connection itself.
    kQuerySupported,      // qSupported[:features]
    kStartNoAckMode,      // QStartNoAckMode
    kReadFeatures,        // qXfer:features:read:<annex>:<offset>,<length>
    kQueryAttached,       // qAttached
    kQueryCurrentThread,  // qC
    kThreadInfoFirst,     // qfThreadInfo
    kThreadInfoNext,      // qsThreadInfo
    kSetThread,           // H<op><thread>
    kThreadAlive,         // T<thread>
    kVContQuery,          // vCont?
    kMustReplyEmpty,      // vMustReplyEmpty
    // Target requests, answered by the server from the replay.
    kStopReason,        // ?
    kReadRegisters,     // g
    kWriteRegisters,    // G (refused: replay is read-only)
    kReadRegister,      // p<n>
    kWriteRegister,     // P<n>=<value> (refused)
    kReadMemory,        // m<addr>,<length>
    kWriteMemory,       // M or X (refused)
    kInsertBreakpoint,  // Z<type>,<addr>,<kind>
    kRemoveBreakpoint,  // z<type>,<addr>,<kind>
    kStep,              // s, vCont;s
    kContinue,          // c, vCont;c
    kReverseStep,       // bs
    kReverseContinue,   // bc
    kKill,              // k, vKill
    kDetach,            // D
  };
  Kind kind = Kind::kUnknown;
  uint64_t address = 0;  // m, Z/z, qXfer offset
  uint64_t length = 0;   // m, Z/z kind, qXfer length
  uint32_t number = 0;   // register number (p), breakpoint type (Z/z)
  std::string annex;     // qXfer annex; for kMalformed, what was wrong
};

// Parses one decoded packet body. Never throws; bad input gives kMalformed
// (with the reason in annex) or kUnknown.
Request parse_request(std::string_view body);

// Breakpoint types of Z/z packets.
enum class BreakpointType : uint32_t {
  kSoftware = 0,
  kHardware = 1,
  kWriteWatch = 2,
  kReadWatch = 3,
  kAccessWatch = 4,
};

// Why the target stopped, as told to gdb (Stop Reply Packets).
struct StopReply {
  enum class Kind {
    kTrap,           // T05: a step finished, or the initial stop
    kSoftwareBreak,  // T05swbreak:;
    kHardwareBreak,  // T05hwbreak:;
    kWriteWatch,     // T05watch:<address>;
    kReplayBegin,    // T05replaylog:begin; (reverse execution hit the start)
    kReplayEnd,      // T05replaylog:end; (forward execution hit the end)
    kExited,         // W<status>
    kTerminated,     // X<signal>: the session cannot go on (the replay failed)
    kInterrupted,    // T02: stopped by gdb's interrupt (Ctrl-C), SIGINT
  };
  Kind kind = Kind::kTrap;
  uint64_t address = 0;     // kWriteWatch
  uint8_t exit_status = 0;  // kExited; kTerminated: the signal number
};

// The one thread the whole machine appears as.
inline constexpr int kThreadId = 1;

std::string format_stop_reply(const StopReply& stop);

}  // namespace analyzer::gdb
