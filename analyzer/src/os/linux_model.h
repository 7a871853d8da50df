#pragma once
// Linux x86_64 (written against 6.1) read from memory through an ISF profile:
// the task list from init_task.tasks, the printk ring buffer (6.x lockless
// layout), mounts of init's mount namespace and the network devices of
// init_net. Kernel virtual addresses go through the vCPU's page tables (or
// init_top_pgt before the first context switch), falling back to the kernel
// image map (__START_KERNEL_map) and the direct map (no KASLR: nokaslr).
#include <optional>

#include "os/kernel_memory.h"
#include "os/os_model.h"
#include "os/struct_view.h"

namespace analyzer {

inline constexpr uint64_t kLinuxStartKernelMap = 0xffffffff80000000ull;
inline constexpr uint64_t kLinuxPageOffset = 0xffff888000000000ull;  // 4-level, no KASLR

struct LogRecord {
  uint64_t sequence = 0;
  uint64_t timestamp_ns = 0;
  int level = 0;  // 0 (emerg) .. 7 (debug)
  int facility = 0;
  std::string text;  // may hold several lines, no trailing newline
};

class LinuxModel final : public OsModel {
 public:
  // Throws ProfileMismatch if linux_banner in memory differs from the profile's.
  LinuxModel(const Profile& profile, const MachineView& view);

  std::string name() const override { return "Linux"; }
  std::string banner() const { return banner_; }
  std::vector<Process> processes() const override;
  std::string kernel_log() const override;
  std::vector<Mount> mounts() const override;
  std::vector<NetDevice> net_devices() const override;

  // Records in sequence order, as printk stored them.
  std::vector<LogRecord> log_records() const;
  // The console's loglevel in memory: records with level >= it were not printed.
  int console_loglevel() const;
  // Records formatted the way the serial console prints them ("[    1.234567] text\n").
  static std::string format_log(const std::vector<LogRecord>& records,
                                std::optional<int> below_level = std::nullopt);

  const KernelMemory& memory() const { return memory_; }
  StructView object(const std::string& type, uint64_t address) const {
    return StructView(profile_, memory_, type, address);
  }

 private:
  Process read_task(const StructView& task) const;
  std::string dentry_path(uint64_t mount_address) const;

  const Profile& profile_;
  KernelMemory memory_;
  std::string banner_;
};

}  // namespace analyzer
