// Slow (ctest -L slow): the timeline of a recorded Linux boot (recorded
// here, ~60 s idle), every pass of it: the exec of /init with its
// arguments, the creation of kthreadd and of its kernel threads, the
// kernel unpacking the initramfs (opens and writes of /init), each event at
// a position before the end where the replay shows rip at the function.
// Prints the cost of each pass (docs/forensics.md, "Timeline").
#include <chrono>
#include <fstream>

#include "machine/vcpu_state.h"
#include "test_os_support.h"
#include "timeline/timeline.h"
#include "travel/time_traveler.h"

namespace {

namespace fs = std::filesystem;
using analyzer::TimelineEvent;

const TimelineEvent* find_event(const std::vector<TimelineEvent>& events,
                                const std::function<bool(const TimelineEvent&)>& match) {
  for (const TimelineEvent& e : events)
    if (match(e)) return &e;
  return nullptr;
}

// One test: ctest runs every TEST in a process of its own, and each would
// record the boot again.
TEST(TimelineLinux, RecordedBootHasTheExecOfInitAndKthreadd) {
  SKIP_WITHOUT_KVM();
  // Four passes, each a replay of the whole boot at emulated-CPL0 speed
  // (measured ~22 min a pass at load 10, docs/forensics.md): more than
  // ctest's 1800 s allows on a loaded runner. The exec of /init and the
  // creation of kthreadd are checked by default in SqlForensicsLinux (one
  // pass); this test adds the file events when asked for.
  if (std::getenv("RR_SLOW_TIMELINE") == nullptr)
    GTEST_SKIP() << "all four Linux timeline passes take longer than ctest allows on a loaded "
                    "runner (set RR_SLOW_TIMELINE=1 to run them)";
  const os_test::LinuxBootRecording rec;
  if (!rec.skip.empty()) GTEST_SKIP() << rec.skip;
  ASSERT_TRUE(rec.error.empty()) << rec.error;
  const analyzer::Profile& profile = os_test::profile_of(rec.guest / "vmlinux");

  analyzer::TimeTraveler traveler(rec.recording, {});
  analyzer::TimelineOptions options;
  using Clock = std::chrono::steady_clock;
  std::vector<std::pair<std::string, Clock::time_point>> passes;
  options.on_pass = [&](const std::string& pass) { passes.emplace_back(pass, Clock::now()); };
  const std::vector<TimelineEvent> events = analyzer::build_timeline(traveler, profile, options);
  passes.emplace_back("done", Clock::now());
  for (size_t i = 0; i + 1 < passes.size(); ++i) {
    const double seconds =
        std::chrono::duration<double>(passes[i + 1].second - passes[i].second).count();
    std::printf("timeline %s: %.1f s\n", passes[i].first.c_str(), seconds);
  }
  std::map<std::string, size_t> per_kind;
  for (const TimelineEvent& e : events) per_kind[e.kind]++;
  for (const auto& [kind, count] : per_kind) std::printf("  %s: %zu events\n", kind.c_str(), count);
  EXPECT_EQ(passes.size(), 5u) << "four passes by default";

  // The kernel's own kernel_execve of /init, as pid 1, succeeding.
  const TimelineEvent* exec = find_event(events, [](const TimelineEvent& e) {
    return e.kind == analyzer::kEventExec && e.path == "/init";
  });
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->pid, 1);
  ASSERT_FALSE(exec->argv.empty());
  EXPECT_EQ(exec->argv[0], "/init");
  EXPECT_EQ(exec->result, 0);
  EXPECT_LT(exec->position.base, traveler.end());

  // swapper (pid 0) creates init (1) and kthreadd (2); kthreadd creates the kernel threads.
  const TimelineEvent* kthreadd = find_event(events, [](const TimelineEvent& e) {
    return e.kind == analyzer::kEventProcessCreate && e.child_pid == 2;
  });
  ASSERT_NE(kthreadd, nullptr);
  EXPECT_EQ(kthreadd->pid, 0);
  EXPECT_LT(kthreadd->position.base, exec->position.base);
  size_t by_kthreadd = 0;
  for (const TimelineEvent& e : events)
    by_kthreadd += e.kind == analyzer::kEventProcessCreate && e.pid == 2 && e.comm == "kthreadd";
  EXPECT_GT(by_kthreadd, 3u);

  // Unpacking the initramfs: /init is created and written by the kernel.
  EXPECT_NE(find_event(events,
                       [](const TimelineEvent& e) {
                         return e.kind == analyzer::kEventFileOpen && e.path == "/init" &&
                                e.result == 0;
                       }),
            nullptr);
  EXPECT_NE(find_event(events,
                       [](const TimelineEvent& e) {
                         return e.kind == analyzer::kEventFileWrite && e.path == "/init" &&
                                e.length > 0;
                       }),
            nullptr);
  for (const TimelineEvent& e : events)
    EXPECT_TRUE(e.error.empty()) << e.function << ": " << e.error;

  // Replaying to an event's position shows the machine entering its function.
  for (const TimelineEvent* e : {kthreadd, exec}) {
    traveler.seek_named(e->position);
    EXPECT_EQ(traveler.vcpu().regs.rip, profile.symbol(e->function)) << e->function;
  }
}

}  // namespace
