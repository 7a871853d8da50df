// The timeline by replay on a real recording of the demo test guest (three
// workers and a main task that waits for them): the system-call trace found
// with breakpoints on the guest kernel's trap dispatcher must say what the
// guest itself says: its per-task system-call counters in memory where the
// replayed range ends, the bytes its tasks wrote on the console, and the
// values they printed (pid, tick count) as the results of the calls that
// returned them.
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>

#include "librr/log.h"
#include "machine/vcpu_state.h"
#include "os/guest_session.h"
#include "os/test_guest_model.h"
#include "test_os_support.h"
#include "test_travel_support.h"
#include "timeline/probe.h"
#include "timeline/timeline.h"
#include "travel/position_spec.h"
#include "travel/time_traveler.h"

namespace {

namespace fs = std::filesystem;
using analyzer::TimelineEvent;

// work=0: the workers skip their computation (minutes of CPL3 loops when
// breakpoints have to be found by single steps) but still make every call.
struct DemoRecording : os_test::GuestRecording {
  static DemoRecording& get() {
    static DemoRecording instance;
    return instance;
  }

 private:
  DemoRecording() : GuestRecording("demo", "work=0") {}
};

// The first landmarks of the recording: the boot and every task's first
// round of calls (replaying the rest, where all tasks sleep and the idle
// loop halts between timer ticks, takes the breakpoint search minutes here).
// Main's first round ends by ~L300 unless a timer interrupt preempts it
// between two system calls (a kernel-return stop: then the workers' first
// rounds come first and main writes at ~L440 and waits at ~L520).
constexpr const char* kFirstRound = "L800";

// The timeline of the first round and the task table where it ends, built
// once per test process.
struct DemoTimeline {
  std::vector<TimelineEvent> events;
  std::vector<analyzer::Process> tasks_at_end;
  std::string error;

  static DemoTimeline& get() {
    static DemoTimeline instance;
    return instance;
  }

 private:
  DemoTimeline() {
    try {
      analyzer::TimeTraveler traveler(DemoRecording::get().recording, {});
      analyzer::TimelineOptions options;
      options.to = librr::Position::parse(kFirstRound);
      events = analyzer::build_timeline(traveler, profile(), options);
      traveler.seek(*options.to);
      tasks_at_end =
          analyzer::TestGuestModel(profile(), analyzer::machine_view(traveler)).processes();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }

 public:
  static const analyzer::Profile& profile() {
    return os_test::profile_of(os_test::guest_elf("demo"));
  }
};

#define REQUIRE_DEMO_TIMELINE()                           \
  SKIP_WITHOUT_KVM();                                     \
  if (!fs::exists(os_test::guest_elf("demo")))            \
    GTEST_SKIP() << "build the test-guests target first"; \
  const DemoRecording& demo = DemoRecording::get();       \
  ASSERT_TRUE(demo.ok) << demo.error;                     \
  const DemoTimeline& timeline = DemoTimeline::get();     \
  ASSERT_TRUE(timeline.error.empty()) << timeline.error;  \
  const std::vector<TimelineEvent>& events = timeline.events

std::vector<const TimelineEvent*> calls_named(const std::vector<TimelineEvent>& events,
                                              const std::string& name, int64_t pid = -1) {
  std::vector<const TimelineEvent*> calls;
  for (const TimelineEvent& e : events)
    if (e.syscall_name == name && (pid < 0 || e.pid == pid)) calls.push_back(&e);
  return calls;
}

uint64_t console_number(const std::string& console, const std::string& pattern) {
  std::smatch match;
  if (!std::regex_search(console, match, std::regex(pattern)))
    throw std::runtime_error("console lacks " + pattern);
  return std::stoull(match[1].str(), nullptr, 0);
}

void SyscallCountsPerTaskEqualTheGuestsOwnCounters(const DemoRecording&,
                                                   const DemoTimeline& timeline) {
  const std::vector<TimelineEvent>& events = timeline.events;
  ASSERT_FALSE(events.empty());
  std::map<int64_t, std::map<std::string, int64_t>> counted;
  std::map<int64_t, std::string> names;
  for (const TimelineEvent& e : events) {
    EXPECT_EQ(e.kind, analyzer::kEventSyscall);
    EXPECT_TRUE(e.error.empty()) << e.error;
    ASSERT_FALSE(e.syscall_name.empty()) << "number " << e.syscall_number;
    counted[e.pid]["sys_" + e.syscall_name]++;
    names[e.pid] = e.comm;
  }
  // The kernel counts restarted (blocked) calls again, and so does the trace.
  ASSERT_EQ(timeline.tasks_at_end.size(), 5u);
  for (const analyzer::Process& task : timeline.tasks_at_end) {
    std::map<std::string, int64_t> expected;
    for (const auto& [key, value] : task.details)
      if (key.rfind("sys_", 0) == 0) expected[key] = value;
    EXPECT_EQ(counted[task.pid], expected) << task.name;
    if (!expected.empty()) {
      EXPECT_EQ(names[task.pid], task.name);
    }
  }
  // Positions come in replay order (one pass: stretch by stretch, each in
  // the order replay reached them), each a distinct name.
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_LE(events[i - 1].position.base, events[i].position.base);
    EXPECT_NE(events[i - 1].position.to_string(), events[i].position.to_string());
  }
}

void WrittenBytesAreTheTasksConsoleOutput(const DemoRecording& demo, const DemoTimeline& timeline) {
  const std::vector<TimelineEvent>& events = timeline.events;
  std::string written;
  for (const TimelineEvent* e : calls_named(events, "WRITE")) {
    EXPECT_EQ(e->data.size(), e->length);
    if (e->result) {
      EXPECT_EQ(*e->result, static_cast<int64_t>(e->length));
    }
    written += e->data;
  }
  // The console minus what the kernel printed itself.
  std::string from_tasks;
  std::istringstream lines(demo.console);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("KERNEL ", 0) != 0) from_tasks += line + "\n";
  // The range ends inside the first round: what was written so far.
  ASSERT_GE(calls_named(events, "WRITE").size(), 3u);
  EXPECT_EQ(written, from_tasks.substr(0, written.size()));
  EXPECT_NE(written.find("demo: lcg round 1/8"), std::string::npos) << written;
}

void ResultsAreTheValuesTheGuestPrinted(const DemoRecording& demo, const DemoTimeline& timeline) {
  const std::vector<TimelineEvent>& events = timeline.events;
  const std::string& console = demo.console;
  // "demo: main pid 1 starting workers"
  const auto main_getpid = calls_named(events, "GETPID", 1);
  ASSERT_FALSE(main_getpid.empty());
  ASSERT_TRUE(main_getpid.front()->result.has_value());
  EXPECT_EQ(static_cast<uint64_t>(*main_getpid.front()->result),
            console_number(console, R"(main pid (\d+))"));
  // "demo: lcg round 1/8 value=... tick=N": N is what lcg's first TICKS returned.
  const auto lcg_ticks = calls_named(events, "TICKS", 2);
  ASSERT_FALSE(lcg_ticks.empty());
  ASSERT_TRUE(lcg_ticks.front()->result.has_value());
  EXPECT_EQ(static_cast<uint64_t>(*lcg_ticks.front()->result),
            console_number(console, R"(lcg round 1/8 value=\w+ tick=(\d+))"));
  // "work=0%": the CMDLINE_INT each task made first returned 0 (default 100).
  for (const TimelineEvent* call : calls_named(events, "CMDLINE_INT")) {
    EXPECT_EQ(call->args[1], 100u);
    if (call->result) {
      EXPECT_EQ(*call->result, 0);
    }
  }
  // main waits for worker 2, which is still running: the WAIT blocks, and a
  // blocked call has no result (the kernel restarts it when woken).
  const auto waits = calls_named(events, "WAIT", 1);
  ASSERT_FALSE(waits.empty());
  EXPECT_EQ(waits.front()->args[0], 2u);
  EXPECT_FALSE(waits.front()->result.has_value());
  EXPECT_TRUE(waits.front()->result_position == std::nullopt);
}

void SeekingToAnEventShowsTheCallAtTheDispatcher(const DemoRecording& demo,
                                                 const DemoTimeline& timeline) {
  const std::vector<TimelineEvent>& events = timeline.events;
  const analyzer::Profile& profile = DemoTimeline::profile();
  const uint64_t dispatcher = profile.symbol("trap_dispatch");
  analyzer::TimeTraveler traveler(demo.recording, {});
  // Backward then forward: checkpoints and replay must land on the same
  // instructions, by the events' names (debug-register runs, no steps).
  std::vector<kvm_regs> entered;
  for (size_t index : {events.size() - 1, events.size() / 2, size_t{0}}) {
    const TimelineEvent& e = events[index];
    SCOPED_TRACE(e.position.to_string() + " " + e.syscall_name);
    traveler.seek_named(e.position);
    EXPECT_EQ(traveler.here(), e.position);
    EXPECT_EQ(traveler.vcpu().regs.rip, dispatcher);
    EXPECT_EQ(e.function, "trap_dispatch");
    entered.push_back(traveler.vcpu().regs);
    // rdi is the trap frame; its rax the system-call number.
    const auto number = traveler.address_space().read_obj<uint64_t>(
        traveler.vcpu().regs.rdi + profile.offset_of("rr_trap_frame", "rax"));
    ASSERT_TRUE(number.has_value());
    EXPECT_EQ(static_cast<int64_t>(*number), e.syscall_number);
    if (e.result_position) {
      traveler.seek_named(*e.result_position);
      EXPECT_NE(traveler.vcpu().regs.rip, dispatcher) << "at the return address";
      EXPECT_GE(e.result_position->base, e.position.base);
    }
  }
  // The same names in another replay reach the same registers.
  analyzer::TimeTraveler again(demo.recording, {});
  const std::vector<size_t> order = {size_t{0}, events.size() / 2, events.size() - 1};
  for (size_t i = 0; i < order.size(); ++i) {
    again.seek_named(events[order[i]].position);
    EXPECT_EQ(std::memcmp(&again.vcpu().regs, &entered[order.size() - 1 - i], sizeof(kvm_regs)), 0)
        << events[order[i]].position.to_string();
  }
}

// One test for the whole trace: ctest runs each TEST in a process of its
// own, and each would replay the recording again.
TEST(Timeline, DemoSyscallTraceEqualsWhatTheGuestSays) {
  REQUIRE_DEMO_TIMELINE();
  ASSERT_FALSE(events.empty());
  {
    SCOPED_TRACE("counts per task and number");
    SyscallCountsPerTaskEqualTheGuestsOwnCounters(demo, timeline);
  }
  {
    SCOPED_TRACE("written bytes");
    WrittenBytesAreTheTasksConsoleOutput(demo, timeline);
  }
  {
    SCOPED_TRACE("results");
    ResultsAreTheValuesTheGuestPrinted(demo, timeline);
  }
  {
    SCOPED_TRACE("seeking to events");
    SeekingToAnEventShowsTheCallAtTheDispatcher(demo, timeline);
  }
}

// The command and the range options, on the start of the recording only (the
// boot and the first round of calls: a few seconds of replay).
TEST(Timeline, CommandAndRangesOnTheFirstCalls) {
  SKIP_WITHOUT_KVM();
  if (!fs::exists(os_test::guest_elf("demo"))) GTEST_SKIP() << "build the test-guests target first";
  const DemoRecording& demo = DemoRecording::get();
  ASSERT_TRUE(demo.ok) << demo.error;
  const std::string end_of_range = "L400";
  const fs::path cache = demo.dir / "cache";
  const std::string command = "RR_CACHE_DIR=" + cache.string() + " " + RR_BINARY_DIR +
                              "/bin/rr-analyze timeline " + demo.recording.string();
  const auto json = os_test::run_command(command + " --json --to " + end_of_range + " 2>/dev/null");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  const auto out = nlohmann::json::parse(json.output);
  EXPECT_EQ(out["from"], "L0");
  EXPECT_EQ(out["to"], end_of_range);
  const auto& listed = out["events"];
  ASSERT_GE(listed.size(), 4u) << json.output;
  EXPECT_EQ(listed[0]["pid"], 1);
  EXPECT_EQ(listed[0]["comm"], "main");
  EXPECT_EQ(listed[0]["function"], "trap_dispatch");

  // The API over a sub-range gives the same events. A range bound is exact:
  // the middle event's name made exact (single steps, once).
  const size_t middle = listed.size() / 2;
  analyzer::TimeTraveler traveler(demo.recording, {});
  traveler.seek_named(
      analyzer::PositionSpec::parse(listed[middle]["position"].get<std::string>()).name());
  EXPECT_EQ(traveler.vcpu().regs.rip, DemoTimeline::profile().symbol("trap_dispatch"));
  const librr::Position middle_position = traveler.position();
  analyzer::TimelineOptions options;
  options.from = middle_position;
  options.to = librr::Position::parse(end_of_range);
  std::vector<double> progress;
  options.progress = [&](double f) { progress.push_back(f); };
  const auto tail = analyzer::build_timeline(traveler, DemoTimeline::profile(), options);
  ASSERT_EQ(tail.size(), listed.size() - middle);
  // Names may differ (counted from the exact start instead of the stretch's
  // base), the calls may not.
  EXPECT_EQ(tail[0].position.to_string(), middle_position.to_string());
  for (size_t i = 0; i < tail.size(); ++i) {
    EXPECT_EQ(tail[i].syscall_name, listed[middle + i]["name"]);
    EXPECT_EQ(tail[i].pid, listed[middle + i]["pid"]);
    EXPECT_EQ(nlohmann::json(tail[i].args), listed[middle + i]["args"]);
  }
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), 1.0);
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  options = {};
  options.to = middle_position;
  const auto head = analyzer::build_timeline(traveler, DemoTimeline::profile(), options);
  ASSERT_EQ(head.size(), middle + 1);
  for (size_t i = 0; i < head.size(); ++i)
    EXPECT_EQ(head[i].position.to_string(), listed[i]["position"]) << "the same search from L0";

  // The text form: a header, then one line per event starting with its position.
  const auto text = os_test::run_command(command + " --to " +
                                         listed[1]["position"].get<std::string>() + " 2>/dev/null");
  ASSERT_EQ(text.exit_code, 0) << text.output;
  std::istringstream lines(text.output);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line.rfind("POSITION", 0), 0u) << line;
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(std::getline(lines, line));
    EXPECT_EQ(line.rfind(listed[i]["position"].get<std::string>() + " ", 0), 0u) << line;
  }
  EXPECT_FALSE(std::getline(lines, line)) << "after --to: " << line;

  // `ps --at` the position of a call: its task is the running one there.
  const nlohmann::json& last = listed.back();
  const auto ps = os_test::run_command("RR_CACHE_DIR=" + cache.string() + " " + RR_BINARY_DIR +
                                       "/bin/rr-analyze ps " + demo.recording.string() + " --at " +
                                       last["position"].get<std::string>() + " --json 2>/dev/null");
  ASSERT_EQ(ps.exit_code, 0) << ps.output;
  std::string running;
  const auto tasks = nlohmann::json::parse(ps.output);
  for (const auto& p : tasks["processes"])
    if (p["state"] == "running") running = p["name"];
  EXPECT_EQ(running, last["comm"]) << ps.output;

  // `at` the same name: the machine entering the dispatcher, the same
  // registers as the API's seek by name (a debug-register run, no steps).
  const auto at = os_test::run_command(
      RR_BINARY_DIR + std::string("/bin/rr-analyze at ") + demo.recording.string() + " " +
      last["position"].get<std::string>() + " regs --json 2>/dev/null");
  ASSERT_EQ(at.exit_code, 0) << at.output;
  const auto regs = nlohmann::json::parse(at.output);
  EXPECT_EQ(regs["position"], last["position"]);
  EXPECT_EQ(regs["regs"]["rip"], DemoTimeline::profile().symbol("trap_dispatch"));
  traveler.seek_named(analyzer::PositionSpec::parse(last["position"].get<std::string>()).name());
  EXPECT_EQ(regs["regs"]["rsp"], traveler.vcpu().regs.rsp);
  EXPECT_EQ(regs["regs"]["rdi"], traveler.vcpu().regs.rdi);

  // Usage errors: exit code 2 with the reason, before any replay.
  const auto bad_kind = os_test::run_command(command + " --kinds exec");
  EXPECT_EQ(bad_kind.exit_code, 2);
  EXPECT_NE(bad_kind.output.find("unknown event kind \"exec\" for this guest (known: syscall)"),
            std::string::npos)
      << bad_kind.output;
  const auto past_end = os_test::run_command(command + " --to L99999999");
  EXPECT_EQ(past_end.exit_code, 2) << past_end.output;
  EXPECT_NE(past_end.output.find("past the end of the recording"), std::string::npos)
      << past_end.output;
}

// serial_write(buf, len) in the test-guest kernel: a WRITE system call's
// bytes going to the console, entered from trap_dispatch a few hundred
// instructions after the call's entry with no exit in between (same
// stretch), and the kernel's own kputs. A probe of this test only: listed
// before the system-call probe, it gets the first pass when every function
// has a pass of its own.
class SerialWriteProbe final : public analyzer::Probe {
 public:
  explicit SerialWriteProbe(uint64_t address)
      : Probe("serial_write", address, analyzer::kEventFileWrite, /*awaits_return=*/false) {}
  analyzer::EntryDecision on_entry(const analyzer::TimeTraveler& traveler) const override {
    const auto& regs = traveler.vcpu().regs;
    TimelineEvent event;
    event.kind = kind();
    event.function = function();
    event.args = {regs.rdi, regs.rsi};
    event.length = regs.rsi;
    analyzer::EntryDecision decision;
    decision.event = std::move(event);
    return decision;
  }
};

// What must not depend on how the functions were grouped into passes.
std::vector<std::string> event_summaries(const std::vector<TimelineEvent>& events) {
  std::vector<std::string> lines;
  for (const TimelineEvent& e : events) {
    std::string line = e.kind + " pid=" + std::to_string(e.pid) + " " + e.function + " " +
                       e.syscall_name + " args";
    for (uint64_t arg : e.args) line += " " + std::to_string(arg);
    lines.push_back(line);
  }
  return lines;
}

// Events of one stretch found by different passes are named by arrivals
// that cannot be compared; the timeline orders them by another run. The
// whole recording (~6 s here: 3 replays and the ordering). With
// serial_write and trap_dispatch in one pass, replay order is the order of
// the hits; with a pass each, serial_write's events come first by pass
// order, so without that ordering a WRITE's console output would come
// before the call that made it.
TEST(Timeline, EventsOfSeveralPassesInOneStretchComeInReplayOrder) {
  SKIP_WITHOUT_KVM();
  if (!fs::exists(os_test::guest_elf("demo"))) GTEST_SKIP() << "build the test-guests target first";
  const DemoRecording& demo = DemoRecording::get();
  ASSERT_TRUE(demo.ok) << demo.error;
  const analyzer::Profile& profile = DemoTimeline::profile();
  analyzer::Probes probes;
  probes.push_back(std::make_unique<SerialWriteProbe>(profile.symbol("serial_write")));
  for (auto& probe : analyzer::test_guest_probes(profile, {})) probes.push_back(std::move(probe));

  analyzer::TimeTraveler traveler(demo.recording, {});
  analyzer::TimelineOptions options;
  std::vector<std::string> passes;
  options.on_pass = [&](const std::string& pass) { passes.push_back(pass); };
  analyzer::ReplayOrderStats order;
  options.on_replay_order = [&](const analyzer::ReplayOrderStats& stats) { order = stats; };
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  const auto together = analyzer::build_timeline(traveler, profile, probes, options);
  const auto one_pass_done = Clock::now();
  ASSERT_EQ(passes.size(), 1u) << "both functions and trap_dispatch's return fit one pass";
  EXPECT_EQ(order.stretches, 0u);

  passes.clear();
  options.functions_per_pass = 1;
  const auto apart = analyzer::build_timeline(traveler, profile, probes, options);
  const auto two_passes_done = Clock::now();
  ASSERT_EQ(passes.size(), 2u) << "a pass per function";
  std::printf(
      "one pass %.1f s; a pass per function %.1f s, of which ordering %.2f s: %zu stretches "
      "(%zu events) with events of both passes, %zu by an arrival run, %zu by exact "
      "positions\n",
      std::chrono::duration<double>(one_pass_done - started).count(),
      std::chrono::duration<double>(two_passes_done - one_pass_done).count(), order.seconds,
      order.stretches, order.events, order.arrival_runs, order.exact_fallbacks);
  // The case this test is about: it needs stretches holding both passes.
  ASSERT_GT(order.stretches, 0u);
  EXPECT_EQ(order.exact_fallbacks, 0u) << "every name counted from its stretch's base";

  EXPECT_EQ(event_summaries(apart), event_summaries(together));
  // Replay order on its own terms: each WRITE's bytes reach serial_write
  // right after the call was entered, with its buffer and length.
  size_t writes = 0;
  for (size_t i = 0; i < apart.size(); ++i) {
    if (apart[i].syscall_name != "WRITE") continue;
    ++writes;
    ASSERT_LT(i + 1, apart.size());
    EXPECT_EQ(apart[i + 1].function, "serial_write") << apart[i].position.to_string();
    EXPECT_EQ(apart[i + 1].args,
              std::vector<uint64_t>(apart[i].args.begin(), apart[i].args.begin() + 2));
    EXPECT_EQ(apart[i + 1].position.base, apart[i].position.base) << "in the same stretch";
  }
  EXPECT_GE(writes, 3u);

  // From inside a stretch: names there count from the range's exact start,
  // which an arrival run from the stretch's base cannot follow; that
  // stretch is ordered by exact positions.
  size_t output = 1;
  while (output < together.size() && !(together[output].function == "serial_write" &&
                                       together[output - 1].syscall_name == "WRITE"))
    ++output;
  ASSERT_LT(output, together.size()) << "a WRITE and its output";
  traveler.seek_named(together[output - 1].position);
  options.from = traveler.position();
  options.to = librr::Position{together[output].position.base.landmark + 1, 0, 0};
  options.functions_per_pass = 0;
  const auto tail_together = analyzer::build_timeline(traveler, profile, probes, options);
  options.functions_per_pass = 1;
  const auto tail_apart = analyzer::build_timeline(traveler, profile, probes, options);
  EXPECT_GT(order.exact_fallbacks, 0u);
  EXPECT_EQ(event_summaries(tail_apart), event_summaries(tail_together));
  ASSERT_GE(tail_apart.size(), 2u);
  EXPECT_EQ(tail_apart[1].function, "serial_write");
}

}  // namespace

// A range that starts where single steps went through a system call from
// user mode, in a stretch that ends at a kernel-return stop: a step over
// `int 0x80` stops after the entry's first instruction, not at it, and the
// count of kernel entries already behind the start must include that one
// (else the search for the stop expected one entry too many and ran past
// it: "the log has AsyncPosition at L299+a1, which replay passed without
// reaching it", 5 of 6 demo recordings once its kernel-return stops came
// next to main's system calls). Recorded with syscallwork=200 (every system
// call first runs 200 passes of kernel work with interrupts on): ~20
// kernel-return stops, where the plain demo has 0-4, by the timing of its
// few stops (none in most recordings since the stops in user loops are based
// on the kernel's return to user mode and their re-runs take a little time).
TEST(Timeline, RangeFromAStepThroughAKernelEntryReachesTheKernelReturnStop) {
  SKIP_WITHOUT_KVM();
  if (!fs::exists(os_test::guest_elf("demo"))) GTEST_SKIP() << "build the test-guests target first";
  const os_test::GuestRecording demo("demo", "\"work=0 syscallwork=200\"");
  ASSERT_TRUE(demo.ok) << demo.error;
  // The kernel-return stops, whose stretches enter the kernel from user mode.
  std::vector<librr::Position> stops;
  librr::LogReader log(demo.recording / "events.rrlog");
  while (auto event = log.next())
    if (const auto* async = std::get_if<librr::AsyncPosition>(&*event);
        async && std::holds_alternative<librr::KernelReturn>(async->memory))
      stops.push_back(async->pos);
  ASSERT_FALSE(stops.empty()) << "no kernel-return stop in the demo recording";

  analyzer::TimeTraveler traveler(demo.recording, {});
  size_t tried = 0;
  for (const librr::Position& stop : stops) {
    if (tried == 3) break;  // a timeline each: ~3 s
    traveler.seek(librr::Position{stop.landmark, stop.async_seq - 1, 0});
    // Single steps up to the first one from user mode into the kernel.
    bool entered = false;
    while (!entered && traveler.position() < stop) {
      const bool from_user_mode = (traveler.vcpu().sregs.cs.selector & 3) == 3;
      if (traveler.step_instruction().kind != analyzer::StopReason::Kind::kStep) break;
      entered = from_user_mode && (traveler.vcpu().sregs.cs.selector & 3) == 0;
    }
    if (!entered || traveler.position() >= stop) continue;
    ++tried;
    analyzer::TimelineOptions options;
    options.from = traveler.position();
    options.to = librr::Position{stop.landmark + 1, 0, 0};
    EXPECT_NO_THROW(analyzer::build_timeline(traveler, DemoTimeline::profile(), options))
        << "from " << options.from->to_string() << " before the stop " << stop.to_string();
  }
  EXPECT_GE(tried, 1u) << "no kernel-return stop's stretch entered the kernel from user mode";
}
