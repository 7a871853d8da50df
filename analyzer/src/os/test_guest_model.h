#pragma once
// The project's test-guest kernel (tests/guests, schemas/test-guest-abi.md):
// its task table `rr_task_table`, read through the guest's own DWARF types so
// that the profile generator is exercised on a second kernel.
#include <cstdint>
#include <string>

#include "os/kernel_memory.h"
#include "os/os_model.h"

namespace analyzer {

struct TestGuestTable {
  std::string program;
  uint32_t current = 0;  // slot on the CPU
  uint64_t ticks = 0, ticks_cpl0 = 0, ticks_cpl3 = 0;
  uint64_t irq_hash = 0;
};

class TestGuestModel final : public OsModel {
 public:
  // Throws ProfileMismatch if the table's magic or version is not in memory
  // where the profile puts it.
  TestGuestModel(const Profile& profile, const MachineView& view);

  std::string name() const override { return "rr test guest"; }
  std::vector<Process> processes() const override;
  TestGuestTable table() const;

 private:
  const Profile& profile_;
  KernelMemory memory_;
  uint64_t table_address_ = 0;
};

// SYS_* names by number (schemas/test-guest-abi.md, "System calls").
const char* test_guest_syscall_name(unsigned number);

}  // namespace analyzer
