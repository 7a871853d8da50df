#pragma once
// Kernel objects a Linux 6.1 function receives as arguments, read through
// the profile at a breakpoint on that function (timeline/linux_probes.cpp):
// the running task, struct filename, struct file's path, an exec's
// arguments (in the new program's address space) and a socket buffer.
#include <cstdint>
#include <string>
#include <vector>

#include "os/linux_model.h"

namespace analyzer {

struct LinuxTaskIdentity {
  uint64_t address = 0;
  int64_t pid = -1;
  int64_t tgid = -1;
  std::string comm;
};

struct LinuxPacket {
  std::string device;   // net_device.name, "" if the buffer has no device yet
  uint64_t length = 0;  // sk_buff.len: bytes from sk_buff.data on
  std::string head;     // the first bytes from sk_buff.data (at most `max_head`)
};

// The task running on the CPU: the per-CPU `current_task` (the kernel's
// GS base is added when the symbol is a per-CPU offset, i.e. on SMP kernels).
uint64_t linux_current_task(const LinuxModel& model, const Profile& profile, uint64_t gs_base);
LinuxTaskIdentity linux_task_identity(const LinuxModel& model, uint64_t task);

// struct filename's name (a kernel copy of the path the caller gave).
std::string linux_filename(const LinuxModel& model, uint64_t filename);

// The absolute path of a struct file, through its mount's mountpoints.
std::string linux_file_path(const LinuxModel& model, uint64_t file);

// argv of an exec being prepared: the `argc` strings copied to the top of
// the new program's stack at linux_binprm.p, read through that program's
// own page tables (linux_binprm.mm->pgd), which are not loaded yet.
std::vector<std::string> linux_exec_arguments(const LinuxModel& model, uint64_t binprm);
std::string linux_exec_filename(const LinuxModel& model, uint64_t binprm);

LinuxPacket linux_packet(const LinuxModel& model, uint64_t skb, size_t max_head);

}  // namespace analyzer
