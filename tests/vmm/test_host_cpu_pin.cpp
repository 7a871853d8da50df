// The vCPU thread runs on one host CPU, the same in record and replay
// (machine/host_cpu_pin.h): native user code reads the CPUID of the host CPU
// it runs on, and a Linux boot whose kernel-return stops re-executed such
// code replayed faithfully on the recorded host CPU only.
#include <gtest/gtest.h>
#include <sched.h>

#include <string>
#include <vector>

#include "machine/host_cpu_pin.h"
#include "record_replay_support.h"

namespace fs = std::filesystem;
using namespace rr_test;

namespace {

// The host CPUs this process may run on.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

// This thread (and the processes it starts) on `cpus` until the end of scope.
class ScopedAffinity {
 public:
  explicit ScopedAffinity(const std::vector<int>& cpus) {
    sched_getaffinity(0, sizeof saved_, &saved_);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const int cpu : cpus) CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  ~ScopedAffinity() { sched_setaffinity(0, sizeof saved_, &saved_); }
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;

 private:
  cpu_set_t saved_;
};

}  // namespace

TEST(HostCpuPin, PinsToAnAllowedCpuAndRefusesOthers) {
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  const ScopedAffinity restore(cpus);
  EXPECT_FALSE(vmm::pin_to_host_cpu(cpus.back()).has_value());
  EXPECT_EQ(allowed_cpus(), std::vector<int>{cpus.back()});
  // Pinned, this thread may run nowhere else: another CPU is refused with
  // the reason, and the pin stays.
  if (cpus.size() > 1) {
    const std::optional<std::string> refused = vmm::pin_to_host_cpu(cpus.front());
    ASSERT_TRUE(refused.has_value());
    EXPECT_NE(refused->find("not one this process may run on"), std::string::npos) << *refused;
    EXPECT_EQ(allowed_cpus(), std::vector<int>{cpus.back()});
  }
  EXPECT_TRUE(vmm::pin_to_host_cpu(-1).has_value());
}

TEST_F(RecordReplay, ReplayRunsOnTheHostCpuRecordRanOn) {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two host CPUs to record on one and replay on another";
  const fs::path rec = dir_ / "hello";
  {
    const ScopedAffinity only({cpus[1]});
    ASSERT_TRUE(recorded(rec, "--guest hello --serial-in none"));
  }
  const std::string manifest = read_file(rec / "manifest.json");
  EXPECT_NE(manifest.find("\"vcpu_host_cpu\": \"" + std::to_string(cpus[1]) + "\""),
            std::string::npos)
      << manifest;
  const std::string not_there =
      "recorded on host CPU " + std::to_string(cpus[1]) + ", not replaying there";
  {
    // Where replay may not run on that CPU, it says so (and still replays).
    const ScopedAffinity only({cpus[0]});
    EXPECT_EQ(run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err"), 0)
        << read_file(dir_ / "replay.err");
    EXPECT_NE(read_file(dir_ / "replay.err").find(not_there), std::string::npos)
        << read_file(dir_ / "replay.err");
  }
  EXPECT_EQ(run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err"), 0)
      << read_file(dir_ / "replay.err");
  EXPECT_EQ(read_file(dir_ / "replay.err").find(not_there), std::string::npos)
      << read_file(dir_ / "replay.err");
}
