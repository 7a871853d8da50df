#pragma once
// Timeline by replay: what the guest OS did, event by event, each with the
// exact position where it happened. The recording is replayed with code
// breakpoints on kernel functions named by the profile (TimeTraveler::
// continue_forward); at each hit the function's arguments are read from the
// registers (SysV ABI) and the objects they point to through the profile.
//
// Linux x86_64 6.1: process creation, exec (path and argv), exit, file opens
// and writes, network transmit/receive. The test-guest kernel: every system
// call with its number, arguments and result.
//
// The replay engine honours at most 4 hardware breakpoints at a time, so the
// Linux functions are grouped into passes, each one replay of the recording
// from `from` to `to`; asking for fewer kinds runs fewer passes
// (docs/forensics.md, "Timeline", gives the measured cost per pass).
// Events come back in replay order: sorted by the (landmark, async stop)
// stretch they lie in; within a stretch holding events of several passes,
// by one more debug-register run over that stretch that counts the
// arrivals of all their names at once (timeline/replay_order.h).
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "librr/position.h"
#include "profile/profile.h"
#include "travel/time_traveler.h"

namespace analyzer {

inline constexpr size_t kTimelineDataLimit = 256;

// The traveler's checkpoint interval for timeline passes: each checkpoint
// compares all guest RAM (~0.1 s here), which at the default 0.25 s costs a
// long Linux pass ~15% (measured); a pass only needs them for the next
// pass's start and for hits made exact.
inline constexpr double kTimelineCheckpointInterval = 2.0;

// Event kinds (TimelineEvent::kind).
inline constexpr const char* kEventProcessCreate = "process_create";
inline constexpr const char* kEventExec = "exec";
inline constexpr const char* kEventExit = "exit";
inline constexpr const char* kEventFileOpen = "file_open";
inline constexpr const char* kEventFileWrite = "file_write";
inline constexpr const char* kEventNetSend = "net_send";
inline constexpr const char* kEventNetReceive = "net_receive";
inline constexpr const char* kEventSyscall = "syscall";

struct TimelineEvent {
  // Where the kernel function (or system call) was entered: seeking there
  // (TimeTraveler::seek_named) shows rip at `function`'s first instruction.
  // Exact (`L12+s40`) where the search single-stepped, else named by the
  // debug registers' arrivals (`L12@0x101060#2`, TimeTraveler::position()
  // gives the exact form at a cost).
  PositionName position;
  std::string kind;      // one of kEvent*
  std::string function;  // kernel function that produced it ("do_exit", "trap_dispatch")
  int64_t pid = -1;      // the task running at `position` (-1 unknown)
  std::string comm;      // its name at `position`

  // Kind-specific; fields that do not apply keep their defaults.
  std::string path;               // exec, file_open: file name; file_write: file path;
                                  // net_*: device name
  std::vector<std::string> argv;  // exec
  int64_t child_pid = -1;         // process_create
  int64_t exit_code = 0;          // exit (the value passed to do_exit)
  uint64_t length = 0;            // file_write, net_*: bytes
  // file_write, test-guest WRITE/NET_SEND: the first bytes written (at most
  // kTimelineDataLimit), as read from the buffer when the call was entered.
  std::string data;
  int64_t syscall_number = -1;  // syscall
  std::string syscall_name;     // syscall ("WRITE", "" if unknown)
  std::vector<uint64_t> args;   // syscall: the argument registers (rdi, rsi, rdx, r10)
  // The function's return value when its return was reached inside the
  // replayed range: exec 0 or -errno; file_open 0 (a file was opened) or
  // -errno; file_write bytes or -errno; syscall the guest's result (none for
  // EXIT, and none for a blocked call the kernel restarts: the restart is
  // another event). nullopt: not reached, or the function does not return.
  std::optional<int64_t> result;
  std::optional<PositionName> result_position;  // where the return was reached
  // Non-empty when guest memory did not hold what the arguments point to
  // (the event is then partial: position, kind, function, maybe pid).
  std::string error;
};

// What putting the events of several passes in replay order took
// (timeline/replay_order.h).
struct ReplayOrderStats {
  size_t stretches = 0;        // stretches with events of more than one pass
  size_t events = 0;           // events in them
  size_t arrival_runs = 0;     // stretches ordered by one arrival-counting run
  size_t exact_fallbacks = 0;  // stretches ordered by exact positions instead
  double seconds = 0;          // wall time of all of it
};

struct TimelineOptions {
  // Kinds to collect; empty = all the OS supports. Unknown names throw
  // librr::Error listing the known ones (see timeline_kinds()).
  std::set<std::string> kinds;
  // Replayed range; nullopt = start / end of the recording.
  std::optional<librr::Position> from;
  std::optional<librr::Position> to;
  // Fraction of the whole job in [0, 1] (all passes), may be empty.
  std::function<void(double fraction)> progress;
  // Called with each pass's description before it runs (e.g. for a
  // verbose log), may be empty.
  std::function<void(const std::string&)> on_pass;
  // At most this many kernel functions per pass; 0: as many as fit the
  // debug registers (the default). 1 replays once per function: slower, the
  // same events (a check of the ordering across passes, tests).
  size_t functions_per_pass = 0;
  // Called once the passes ran, with what their ordering took; may be empty.
  std::function<void(const ReplayOrderStats&)> on_replay_order;
};

// What the OS of `profile` supports, in display order.
std::vector<std::string> timeline_kinds(const Profile& profile);

// Replays `traveler` over the range once per pass and returns the events in
// position order. The traveler is left at an unspecified position.
// Throws librr::Error (unknown kind, a profile missing a needed symbol,
// `from` after `to`), PositionPastEnd, librr::Divergence.
std::vector<TimelineEvent> build_timeline(TimeTraveler& traveler, const Profile& profile,
                                          const TimelineOptions& options);

}  // namespace analyzer
