// Slow (ctest -L slow): the real Linux guest recorded booting (~60 s), then
// read at the end of the recording through a profile generated from its
// vmlinux: the task list, the kernel log (must equal the console output
// byte for byte where both have it), mounts and network devices; profiles of
// other kernels are refused.
#include <fstream>

#include "os/guest_session.h"
#include "os/linux_model.h"
#include "profile/isf_format.h"
#include "profile/isf_generator.h"
#include "profile/profile_store.h"
#include "test_os_support.h"
#include "travel/time_traveler.h"

namespace {

using analyzer::Process;
namespace fs = std::filesystem;

// One recording shared by the tests of this process.
struct LinuxRecording : os_test::LinuxBootRecording {
  static LinuxRecording& get() {
    static LinuxRecording instance;
    return instance;
  }
};

#define REQUIRE_LINUX_RECORDING()                    \
  SKIP_WITHOUT_KVM();                                \
  const LinuxRecording& rec = LinuxRecording::get(); \
  if (!rec.skip.empty()) GTEST_SKIP() << rec.skip;   \
  ASSERT_TRUE(rec.error.empty()) << rec.error

// One replay to the end, shared by the in-process tests.
struct EndOfBoot {
  std::unique_ptr<analyzer::TimeTraveler> traveler;
  std::unique_ptr<analyzer::LinuxModel> model;
  static EndOfBoot& get(const LinuxRecording& rec) {
    static EndOfBoot instance(rec);
    return instance;
  }

 private:
  explicit EndOfBoot(const LinuxRecording& rec) {
    traveler = std::make_unique<analyzer::TimeTraveler>(rec.recording, analyzer::TravelOptions{});
    traveler->seek(traveler->end());
    model = std::make_unique<analyzer::LinuxModel>(os_test::profile_of(rec.guest / "vmlinux"),
                                                   analyzer::machine_view(*traveler));
  }
};

void ProfileOfThisBuildIsAcceptedOthersAreRefused(const LinuxRecording& rec) {
  const os_test::SnapshotRam ram(rec.recording / "snapshot.rrsnap");
  const analyzer::MachineView view{ram.memory(), 0, false};
  const analyzer::Profile& profile = os_test::profile_of(rec.guest / "vmlinux");
  const auto model = analyzer::make_os_model(profile, view);
  EXPECT_EQ(model->name(), "Linux");
  EXPECT_EQ(dynamic_cast<const analyzer::LinuxModel&>(*model).banner(), profile.linux_banner());

  // The same profile with one character of its banner changed: another build.
  nlohmann::json edited = profile.document();
  std::string banner = *profile.linux_banner();
  banner[banner.find('#') + 1] ^= 1;
  edited["symbols"]["linux_banner"]["constant_data"] =
      analyzer::base64_encode(std::vector<uint8_t>(banner.begin(), banner.end()));
  const analyzer::Profile other = analyzer::Profile::from_json(edited, "edited.json");
  try {
    analyzer::make_os_model(other, view);
    FAIL() << "a profile with another banner was accepted";
  } catch (const analyzer::ProfileMismatch& e) {
    EXPECT_NE(std::string(e.what()).find("another kernel build"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("edited.json"), std::string::npos) << e.what();
  }
  // The test guest's profile: its task table is not in Linux's memory.
  EXPECT_THROW(analyzer::make_os_model(os_test::profile_of(os_test::guest_elf("hello")), view),
               analyzer::ProfileMismatch);

  // The command refuses it too, before replaying, with a clear message.
  const fs::path wrong = rec.dir / "hello-profile.json";
  analyzer::write_profile(analyzer::generate_isf(os_test::guest_elf("hello")), wrong);
  const auto result = os_test::rr_analyze("ps " + rec.recording.string() +
                                          " --at start --profile " + wrong.string());
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("wrong profile"), std::string::npos) << result.output;
}

void TaskListAtTheEndOfBoot(const LinuxRecording& rec) {
  const std::vector<Process> tasks = EndOfBoot::get(rec).model->processes();
  ASSERT_GE(tasks.size(), 4u);
  EXPECT_EQ(tasks[0].pid, 0);
  EXPECT_EQ(tasks[0].name.rfind("swapper", 0), 0u) << tasks[0].name;  // "swapper/0" on SMP
  EXPECT_EQ(tasks[1].pid, 1);
  EXPECT_EQ(tasks[1].name, "init");
  EXPECT_EQ(tasks[1].parent_pid, 0);
  EXPECT_EQ(tasks[2].pid, 2);
  EXPECT_EQ(tasks[2].name, "kthreadd");
  EXPECT_TRUE(tasks[2].kernel_thread);
  size_t workers = 0;
  for (size_t i = 3; i < tasks.size(); ++i) {
    EXPECT_EQ(tasks[i].parent_pid, 2) << tasks[i].name;
    EXPECT_TRUE(tasks[i].kernel_thread) << tasks[i].name;
    EXPECT_EQ(tasks[i].page_table, 0u) << tasks[i].name;
    workers += tasks[i].name.find("kworker") == 0;
  }
  EXPECT_GT(workers, 0u);
  for (const Process& t : tasks) {
    EXPECT_EQ(t.uid, 0) << t.name;
    EXPECT_EQ(t.gid, 0) << t.name;
    EXPECT_EQ(t.tgid, t.pid) << t.name;
  }
}

void KernelLogEqualsTheConsoleOutput(const LinuxRecording& rec) {
  const analyzer::LinuxModel& model = *EndOfBoot::get(rec).model;
  const auto records = model.log_records();
  ASSERT_FALSE(records.empty());
  for (size_t i = 1; i < records.size(); ++i)
    EXPECT_EQ(records[i].sequence, records[i - 1].sequence + 1) << "a gap in the ring buffer";
  // The console printed every record in order, except debug-level ones it
  // suppressed under the console_loglevel of that moment (the panic at the
  // end raises it, so the value in memory now does not tell which).
  const std::vector<std::string> console = os_test::console_lines(rec.console);
  size_t line = 0, matched = 0;
  for (const analyzer::LogRecord& record : records) {
    const auto lines = os_test::console_lines(analyzer::LinuxModel::format_log({record}));
    const bool printed =
        line + lines.size() <= console.size() &&
        std::equal(lines.begin(), lines.end(), console.begin() + static_cast<long>(line));
    if (printed) {
      line += lines.size();
      matched += lines.size();
      continue;
    }
    ASSERT_GE(record.level, 7) << "record " << record.sequence << " is not on the console at line "
                               << line + 1 << ": " << record.text;
  }
  EXPECT_EQ(line, console.size()) << "console lines the log lacks, from line " << line + 1;
  EXPECT_GT(matched, 50u);
}

void MountsAndNetworkDevices(const LinuxRecording& rec) {
  const analyzer::LinuxModel& model = *EndOfBoot::get(rec).model;
  const auto mounts = model.mounts();
  ASSERT_FALSE(mounts.empty());
  EXPECT_EQ(mounts[0].path, "/");
  EXPECT_EQ(mounts[0].fs_type, "rootfs");
  const auto devices = model.net_devices();
  ASSERT_FALSE(devices.empty());
  EXPECT_EQ(devices[0].name, "lo");
  EXPECT_EQ(devices[0].index, 1);
  EXPECT_EQ(devices[0].mtu, 65536u);
}

void PsAndDmesgCommands(const LinuxRecording& rec) {
  const fs::path cache = rec.dir / "cache";
  const auto ps =
      os_test::run_command("RR_CACHE_DIR=" + cache.string() + " " + RR_BINARY_DIR +
                           "/bin/rr-analyze ps " + rec.recording.string() + " --json 2>/dev/null");
  ASSERT_EQ(ps.exit_code, 0) << ps.output;
  const auto out = nlohmann::json::parse(ps.output);
  EXPECT_EQ(out["os"], "Linux");
  ASSERT_GE(out["processes"].size(), 3u);
  EXPECT_EQ(out["processes"][2]["name"], "kthreadd");
  const auto dmesg =
      os_test::run_command("RR_CACHE_DIR=" + cache.string() + " " + RR_BINARY_DIR +
                           "/bin/rr-analyze dmesg " + rec.recording.string() + " 2>/dev/null");
  ASSERT_EQ(dmesg.exit_code, 0) << dmesg.output;
  const auto log = os_test::console_lines(dmesg.output);
  const auto console = os_test::console_lines(rec.console);
  ASSERT_GT(log.size(), 50u);
  // Every console line is in the log, in order (the log may hold more debug lines).
  size_t at = 0;
  for (const std::string& line : console) {
    while (at < log.size() && log[at] != line) ++at;
    ASSERT_LT(at, log.size()) << "console line not in dmesg output: " << line;
    ++at;
  }
}

// One test: ctest runs every TEST in a process of its own, and each would
// record the boot again.
TEST(OsLinux, RecordedBootReadThroughItsProfile) {
  REQUIRE_LINUX_RECORDING();
  {
    SCOPED_TRACE("profiles of this build are accepted, others refused");
    ProfileOfThisBuildIsAcceptedOthersAreRefused(rec);
  }
  {
    SCOPED_TRACE("task list");
    TaskListAtTheEndOfBoot(rec);
  }
  {
    SCOPED_TRACE("kernel log");
    KernelLogEqualsTheConsoleOutput(rec);
  }
  {
    SCOPED_TRACE("mounts and network devices");
    MountsAndNetworkDevices(rec);
  }
  {
    SCOPED_TRACE("ps and dmesg commands");
    PsAndDmesgCommands(rec);
  }
}

}  // namespace
