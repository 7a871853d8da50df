#include "gdb/gdb_request.h"

#include <fmt/format.h>

#include <optional>

#include "gdb/gdb_packet.h"

namespace analyzer::gdb {
namespace {

using Kind = Request::Kind;

Request malformed(std::string_view body, std::string_view why) {
  Request r;
  r.kind = Kind::kMalformed;
  r.annex = fmt::format("'{}': {}", body.substr(0, 64), why);
  return r;
}

Request simple(Kind kind) {
  Request r;
  r.kind = kind;
  return r;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// "<a>,<b>" in hex; the rest after an optional ';' or ':' is ignored by callers
// that pass only the part they want.
std::optional<std::pair<uint64_t, uint64_t>> parse_pair(std::string_view text) {
  const size_t comma = text.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  const auto first = parse_hex_number(text.substr(0, comma));
  const auto second = parse_hex_number(text.substr(comma + 1));
  if (!first || !second) return std::nullopt;
  return std::make_pair(*first, *second);
}

// A thread id as gdb writes it: "-1" (all), "0" (any), hex, or "p<pid>.<tid>".
bool valid_thread_id(std::string_view id) {
  if (id == "-1" || id == "0") return true;
  if (starts_with(id, "p")) {
    id.remove_prefix(1);
    const size_t dot = id.find('.');
    if (dot != std::string_view::npos) {
      const std::string_view tid = id.substr(dot + 1);
      if (tid != "-1" && !parse_hex_number(tid)) return false;
      id = id.substr(0, dot);
    }
    return id == "-1" || parse_hex_number(id).has_value();
  }
  return parse_hex_number(id).has_value();
}

// Z<type>,<addr>,<kind>[;cond...]
Request parse_breakpoint(std::string_view body, Kind kind) {
  std::string_view args = body.substr(1);
  args = args.substr(0, args.find(';'));
  const size_t comma = args.find(',');
  if (comma == std::string_view::npos) return malformed(body, "expected type,address,kind");
  const auto type = parse_hex_number(args.substr(0, comma));
  const auto address_and_kind = parse_pair(args.substr(comma + 1));
  if (!type || *type > 4 || !address_and_kind)
    return malformed(body, "expected type (0-4),address,kind in hex");
  Request r;
  r.kind = kind;
  r.number = static_cast<uint32_t>(*type);
  r.address = address_and_kind->first;
  r.length = address_and_kind->second;
  return r;
}

// vCont;<action>[:<thread>]... The machine is one thread, so the first
// action that applies to it (no thread, -1, or thread 1) decides.
Request parse_vcont(std::string_view body) {
  std::string_view rest = body.substr(5);  // after "vCont"
  while (!rest.empty()) {
    if (rest.front() != ';') return malformed(body, "expected ';' before each action");
    rest.remove_prefix(1);
    const size_t end = rest.find(';');
    std::string_view action = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    std::string_view thread;
    if (const size_t colon = action.find(':'); colon != std::string_view::npos) {
      thread = action.substr(colon + 1);
      action = action.substr(0, colon);
      if (!valid_thread_id(thread)) return malformed(body, "bad thread id");
    }
    if (action.empty()) return malformed(body, "empty action");
    const bool applies = thread.empty() || thread == "-1" || parse_hex_number(thread) == 1u ||
                         thread == "p1.1" || thread == "p1.-1";
    if (!applies) continue;
    // 'S'/'C' carry a signal to deliver; a machine replay has none to give.
    switch (action.front()) {
      case 's':
      case 'S':
        return simple(Kind::kStep);
      case 'c':
      case 'C':
        return simple(Kind::kContinue);
      default:
        return malformed(body, "only s, S, c and C actions are supported");
    }
  }
  return malformed(body, "no action for thread 1");
}

Request parse_query(std::string_view body) {
  if (body == "qSupported" || starts_with(body, "qSupported:"))
    return simple(Kind::kQuerySupported);
  if (body == "qAttached" || starts_with(body, "qAttached:")) return simple(Kind::kQueryAttached);
  if (body == "qC") return simple(Kind::kQueryCurrentThread);
  if (body == "qfThreadInfo") return simple(Kind::kThreadInfoFirst);
  if (body == "qsThreadInfo") return simple(Kind::kThreadInfoNext);
  constexpr std::string_view kFeatures = "qXfer:features:read:";
  if (starts_with(body, kFeatures)) {
    const std::string_view args = body.substr(kFeatures.size());
    const size_t colon = args.rfind(':');
    if (colon == std::string_view::npos) return malformed(body, "expected annex:offset,length");
    const auto range = parse_pair(args.substr(colon + 1));
    if (!range) return malformed(body, "expected offset,length in hex");
    Request r;
    r.kind = Kind::kReadFeatures;
    r.annex = std::string(args.substr(0, colon));
    r.address = range->first;
    r.length = range->second;
    return r;
  }
  return simple(Kind::kUnknown);
}

// s, c, S<sig>, C<sig>: an address to resume at cannot be honoured (the
// replay decides where the machine is), so it is refused.
Request parse_resume(std::string_view body, Kind kind) {
  std::string_view args = body.substr(1);
  if (body[0] == 'S' || body[0] == 'C') {
    const size_t semicolon = args.find(';');
    if (!parse_hex_number(args.substr(0, semicolon))) return malformed(body, "expected a signal");
    if (semicolon == std::string_view::npos) return simple(kind);
    args = args.substr(semicolon + 1);
  }
  if (!args.empty())
    return malformed(body, "resuming at another address is not possible in a replay");
  return simple(kind);
}

}  // namespace

Request parse_request(std::string_view body) {
  if (body.empty()) return simple(Kind::kUnknown);
  switch (body[0]) {
    case '?':
      return body.size() == 1 ? simple(Kind::kStopReason) : malformed(body, "unexpected arguments");
    case 'g':
      return body.size() == 1 ? simple(Kind::kReadRegisters)
                              : malformed(body, "unexpected arguments");
    case 'G':
      return simple(Kind::kWriteRegisters);
    case 'p': {
      const auto number = parse_hex_number(body.substr(1));
      if (!number || *number > 0xffff) return malformed(body, "expected a register number in hex");
      Request r;
      r.kind = Kind::kReadRegister;
      r.number = static_cast<uint32_t>(*number);
      return r;
    }
    case 'P':
      return simple(Kind::kWriteRegister);
    case 'm': {
      const auto range = parse_pair(body.substr(1));
      if (!range) return malformed(body, "expected address,length in hex");
      Request r;
      r.kind = Kind::kReadMemory;
      r.address = range->first;
      r.length = range->second;
      return r;
    }
    case 'M':
    case 'X':
      return simple(Kind::kWriteMemory);
    case 'Z':
      return parse_breakpoint(body, Kind::kInsertBreakpoint);
    case 'z':
      return parse_breakpoint(body, Kind::kRemoveBreakpoint);
    case 's':
    case 'S':
      return parse_resume(body, Kind::kStep);
    case 'c':
    case 'C':
      return parse_resume(body, Kind::kContinue);
    case 'b':
      if (body == "bs") return simple(Kind::kReverseStep);
      if (body == "bc") return simple(Kind::kReverseContinue);
      return simple(Kind::kUnknown);
    case 'k':
      return simple(Kind::kKill);
    case 'D':
      return simple(Kind::kDetach);
    case 'H':
      if (body.size() < 3 || !valid_thread_id(body.substr(2)))
        return malformed(body, "expected H<op><thread-id>");
      return simple(Kind::kSetThread);
    case 'T':
      if (!valid_thread_id(body.substr(1))) return malformed(body, "expected T<thread-id>");
      return simple(Kind::kThreadAlive);
    case 'q':
      return parse_query(body);
    case 'Q':
      return body == "QStartNoAckMode" ? simple(Kind::kStartNoAckMode) : simple(Kind::kUnknown);
    case 'v':
      if (body == "vCont?") return simple(Kind::kVContQuery);
      if (starts_with(body, "vCont;")) return parse_vcont(body);
      if (body == "vMustReplyEmpty") return simple(Kind::kMustReplyEmpty);
      if (body == "vKill" || starts_with(body, "vKill;")) return simple(Kind::kKill);
      return simple(Kind::kUnknown);
    default:
      return simple(Kind::kUnknown);
  }
}

std::string format_stop_reply(const StopReply& stop) {
  const std::string trap = fmt::format("T05thread:{:x};", kThreadId);
  switch (stop.kind) {
    case StopReply::Kind::kTrap:
      return trap;
    case StopReply::Kind::kSoftwareBreak:
      return trap + "swbreak:;";
    case StopReply::Kind::kHardwareBreak:
      return trap + "hwbreak:;";
    case StopReply::Kind::kWriteWatch:
      return trap + fmt::format("watch:{:x};", stop.address);
    case StopReply::Kind::kReplayBegin:
      return trap + "replaylog:begin;";
    case StopReply::Kind::kReplayEnd:
      return trap + "replaylog:end;";
    case StopReply::Kind::kExited:
      return fmt::format("W{:02x}", stop.exit_status);
    case StopReply::Kind::kTerminated:
      return fmt::format("X{:02x}", stop.exit_status);
    case StopReply::Kind::kInterrupted:
      return fmt::format("T02thread:{:x};", kThreadId);
  }
  return trap;
}

}  // namespace analyzer::gdb
