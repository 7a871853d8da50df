// The test-guest OS model on real recordings of the demo guest: the task
// table read from guest memory (through the guest's own DWARF profile) must
// say what the guest printed about itself on its console.
#include <fstream>
#include <regex>

#include "os/guest_session.h"
#include "os/test_guest_model.h"
#include "test_os_support.h"
#include "travel/time_traveler.h"

namespace {

using analyzer::Process;
namespace fs = std::filesystem;

// The demo guest recorded once per test binary, with its console output.
struct DemoRecording : os_test::GuestRecording {
  static DemoRecording& get() {
    static DemoRecording instance;
    return instance;
  }

 private:
  DemoRecording() : GuestRecording("demo", "work=20") {}
};

#define REQUIRE_DEMO_RECORDING()                          \
  SKIP_WITHOUT_KVM();                                     \
  if (!fs::exists(os_test::guest_elf("demo")))            \
    GTEST_SKIP() << "build the test-guests target first"; \
  const DemoRecording& demo = DemoRecording::get();       \
  ASSERT_TRUE(demo.ok) << demo.error

uint64_t console_number(const std::string& console, const std::string& pattern) {
  std::smatch match;
  if (!std::regex_search(console, match, std::regex(pattern)))
    throw std::runtime_error("console lacks " + pattern);
  return std::stoull(match[1].str(), nullptr, 0);
}

TEST(OsTestGuest, InitialSnapshotHasTheStaticTableAndNoTasksYet) {
  REQUIRE_DEMO_RECORDING();
  const os_test::SnapshotRam ram(demo.recording / "snapshot.rrsnap");
  const analyzer::Profile& profile = os_test::profile_of(os_test::guest_elf("demo"));
  // PVH entry: paging is off, virtual == physical.
  const analyzer::MachineView view{ram.memory(), 0, false};
  const auto model = analyzer::make_os_model(profile, view);
  EXPECT_EQ(model->name(), "rr test guest");
  EXPECT_TRUE(model->processes().empty());
  const auto table = dynamic_cast<const analyzer::TestGuestModel&>(*model).table();
  EXPECT_EQ(table.program, "");
  EXPECT_EQ(table.ticks, 0u);
}

TEST(OsTestGuest, TaskTableAtTheEndEqualsWhatTheGuestPrinted) {
  REQUIRE_DEMO_RECORDING();
  analyzer::TimeTraveler traveler(demo.recording, {});
  traveler.seek(traveler.end());
  const analyzer::Profile& profile = os_test::profile_of(os_test::guest_elf("demo"));
  const analyzer::TestGuestModel model(profile, analyzer::machine_view(traveler));

  const auto table = model.table();
  const std::string& console = demo.console;
  EXPECT_EQ(table.program, "demo");
  EXPECT_EQ(table.ticks, console_number(console, R"(KERNEL exit status=0 ticks=(\d+))"));
  EXPECT_EQ(table.ticks_cpl0,
            console_number(console, R"(KERNEL exit status=\d+ ticks=\d+ cpl0=(\d+))"));
  EXPECT_EQ(table.ticks_cpl3, console_number(console, R"(KERNEL exit .* cpl3=(\d+))"));
  EXPECT_EQ(table.irq_hash, console_number(console, R"(irqhash=(0x[0-9a-f]+))"));

  const std::vector<Process> processes = model.processes();
  const uint64_t tasks = console_number(console, R"(KERNEL timer_hz=\d+ tasks=(\d+))");
  ASSERT_EQ(processes.size(), tasks + 1) << "idle + the program's tasks";
  const std::vector<std::string> names = {"idle", "main", "lcg", "collatz", "sieve"};
  for (size_t i = 0; i < processes.size() && i < names.size(); ++i) {
    EXPECT_EQ(processes[i].pid, static_cast<int64_t>(i));
    EXPECT_EQ(processes[i].name, names[i]);
  }
  EXPECT_TRUE(processes[0].kernel_thread);
  // main shut the machine down: it is the running task, its last call SHUTDOWN.
  EXPECT_EQ(processes[1].state, "running");
  EXPECT_EQ(processes[1].details.at("sys_SHUTDOWN"), 1);
  // Blocking calls are restarted after the wake-up and counted again.
  EXPECT_GE(processes[1].details.at("sys_WAIT"), 3);
  // Each worker exited with the code the main task printed when it reaped it.
  for (int pid = 2; pid <= 4; ++pid) {
    const Process& worker = processes[static_cast<size_t>(pid)];
    EXPECT_EQ(worker.state, "exited") << worker.name;
    EXPECT_EQ(worker.details.at("sys_EXIT"), 1) << worker.name;
    EXPECT_EQ(
        static_cast<uint64_t>(worker.details.at("exit_code")),
        console_number(console, "demo: worker " + std::to_string(pid) + R"( exited code=(\d+))"))
        << worker.name;
    EXPECT_EQ(worker.page_table, processes[1].page_table) << "one shared address space";
  }
  EXPECT_NE(processes[1].page_table, 0u);
}

TEST(OsTestGuest, PsCommandGeneratesAndCachesTheProfile) {
  REQUIRE_DEMO_RECORDING();
  const fs::path cache = demo.dir / "cache";
  const auto result =
      os_test::run_command("RR_CACHE_DIR=" + cache.string() + " " + std::string(RR_BINARY_DIR) +
                           "/bin/rr-analyze ps " + demo.recording.string() + " --json 2>/dev/null");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto out = nlohmann::json::parse(result.output);
  ASSERT_EQ(out["processes"].size(), 5u) << result.output;
  EXPECT_EQ(out["processes"][4]["name"], "sieve");
  EXPECT_EQ(out["processes"][2]["state"], "exited");
  EXPECT_FALSE(fs::is_empty(cache / "profiles"));
  // A position in the middle: L0 is the start, before the kernel made any task.
  const auto start = os_test::run_command("RR_CACHE_DIR=" + cache.string() + " " +
                                          std::string(RR_BINARY_DIR) + "/bin/rr-analyze ps " +
                                          demo.recording.string() + " --at start --json 2>&1");
  ASSERT_EQ(start.exit_code, 0) << start.output;
  EXPECT_TRUE(nlohmann::json::parse(start.output)["processes"].empty()) << start.output;
}

TEST(OsTestGuest, LinuxProfileIsRefusedOnTheTestGuest) {
  REQUIRE_DEMO_RECORDING();
  const auto linux_dir = os_test::linux_guest_dir();
  if (!linux_dir) GTEST_SKIP() << "the Linux guest is not built here";
  const os_test::SnapshotRam ram(demo.recording / "snapshot.rrsnap");
  const analyzer::Profile& profile = os_test::profile_of(*linux_dir / "vmlinux");
  try {
    analyzer::make_os_model(profile, {ram.memory(), 0, false});
    FAIL() << "the vmlinux profile was accepted for the test guest";
  } catch (const analyzer::ProfileMismatch& e) {
    EXPECT_NE(std::string(e.what()).find("another kernel build"), std::string::npos) << e.what();
  }
}

}  // namespace
