// Hardware performance counters: the precondition for rr/ReVirt-style
// positioning by retired-branch count.
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "librr/error.h"
#include "probe/measurements.h"
#include "probe/snippet.h"

namespace vmm::probe {
namespace {

// A counter on the calling thread, counting host and guest, user and kernel
// (as root; a guest's execution is attributed to its vCPU thread).
kvm::Fd open_counter(uint64_t config, std::string& error) {
  perf_event_attr attr{};
  attr.type = PERF_TYPE_HARDWARE;
  attr.size = sizeof attr;
  attr.config = config;
  attr.disabled = 1;
  const long fd = ::syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) {
    error = std::string("perf_event_open: ") + std::strerror(errno);
    return kvm::Fd();
  }
  return kvm::Fd(static_cast<int>(fd));
}

uint64_t read_counter(const kvm::Fd& counter) {
  uint64_t value = 0;
  if (::read(counter.get(), &value, sizeof value) != sizeof value)
    librr::throw_errno("read perf counter");
  return value;
}

// Counts a host loop of known length; a counter that opens but never counts
// (as some virtual PMUs do) is not available.
bool counts_host_loop(uint64_t config, std::string& error) {
  kvm::Fd counter = open_counter(config, error);
  if (!counter) return false;
  constexpr uint64_t kIterations = 1000000;
  ::ioctl(counter.get(), PERF_EVENT_IOC_RESET, 0);
  ::ioctl(counter.get(), PERF_EVENT_IOC_ENABLE, 0);
  for (uint64_t i = 0; i < kIterations; ++i) asm volatile("" ::: "memory");
  ::ioctl(counter.get(), PERF_EVENT_IOC_DISABLE, 0);
  const uint64_t counted = read_counter(counter);
  if (counted < kIterations) {
    error = "counter opened but counted " + std::to_string(counted) + " for a loop of " +
            std::to_string(kIterations) + " iterations";
    return false;
  }
  return true;
}

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

PerfCheck measure_perf() {
  PerfCheck check;
  check.enable_pmu = read_first_line("/sys/module/kvm/parameters/enable_pmu");
  check.instructions_available =
      counts_host_loop(PERF_COUNT_HW_INSTRUCTIONS, check.instructions_error);
  check.branches_available =
      counts_host_loop(PERF_COUNT_HW_BRANCH_INSTRUCTIONS, check.branches_error);

  {
    kvm::System system;
    for (const kvm_cpuid_entry2& entry : system.supported_cpuid())
      if (entry.function == 0xa) check.guest_pmu_version = static_cast<int>(entry.eax & 0xff);
  }

  if (check.branches_available) {
    // A native CPL3 guest loop of known length: dec rcx; jnz.
    const GuestMode mode = GuestMode::long64_cpl3;
    Snippet code(mode);
    code.dec_counter().jnz_to(0).finish();
    ProbeGuest guest;
    guest.load(mode, code.code());
    kvm_regs regs = guest.regs();
    check.guest_branches_expected = 10000000;
    regs.rcx = check.guest_branches_expected;
    guest.set_regs(regs);
    std::string error;
    kvm::Fd counter = open_counter(PERF_COUNT_HW_BRANCH_INSTRUCTIONS, error);
    if (!counter) throw librr::Error(error);
    ::ioctl(counter.get(), PERF_EVENT_IOC_RESET, 0);
    ::ioctl(counter.get(), PERF_EVENT_IOC_ENABLE, 0);
    const RunOutcome outcome = guest.run_once(std::chrono::milliseconds(2000));
    ::ioctl(counter.get(), PERF_EVENT_IOC_DISABLE, 0);
    if (outcome.timed_out || !finished_normally(guest, mode))
      throw librr::Error("the guest branch loop did not finish");
    check.guest_branches_counted = read_counter(counter);
    check.counts_guest_branches = check.guest_branches_counted >= check.guest_branches_expected;
  }
  check.status = "ok";
  return check;
}

}  // namespace vmm::probe
