#pragma once
// What the forensics commands ask of a guest operating system, whatever it
// is. One implementation per OS (os/linux_model.*, os/test_guest_model.*);
// make_os_model picks it from the profile and refuses a profile that does not
// belong to the kernel in memory.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "librr/error.h"
#include "os/machine_view.h"
#include "profile/profile.h"

namespace analyzer {

struct Process {
  int64_t pid = 0;
  int64_t tgid = 0;
  int64_t parent_pid = -1;  // -1: none
  std::string name;
  std::string state;  // "running", "sleeping", ... (OS-specific words)
  int64_t uid = -1;   // -1: the OS has no users
  int64_t gid = -1;
  uint64_t page_table = 0;  // physical PML4 of its address space; 0 for kernel threads
  uint64_t address = 0;     // guest virtual address of its kernel object
  bool kernel_thread = false;
  // OS-specific counters by name (test guest: ticks, system calls per name...).
  std::map<std::string, int64_t> details;
};

struct Mount {
  std::string device;
  std::string path;
  std::string fs_type;
};

struct NetDevice {
  std::string name;
  int64_t index = 0;
  std::string mac;  // aa:bb:cc:dd:ee:ff, "" if none
  uint64_t mtu = 0;
  uint64_t flags = 0;
};

// The profile does not describe the kernel in memory.
class ProfileMismatch : public librr::Error {
 public:
  using librr::Error::Error;
};

// The OS model cannot answer this question (e.g. no kernel log).
class NotSupported : public librr::Error {
 public:
  using librr::Error::Error;
};

class OsModel {
 public:
  virtual ~OsModel() = default;
  virtual std::string name() const = 0;
  virtual std::vector<Process> processes() const = 0;
  // The kernel's log as the console prints it (lines end with '\n').
  virtual std::string kernel_log() const { throw NotSupported(name() + " has no kernel log"); }
  virtual std::vector<Mount> mounts() const { throw NotSupported(name() + " has no mounts"); }
  virtual std::vector<NetDevice> net_devices() const {
    throw NotSupported(name() + " has no network device list");
  }
};

// Throws ProfileMismatch (banner differs, table magic absent) or librr::Error
// (profile for an OS no model knows).
std::unique_ptr<OsModel> make_os_model(const Profile& profile, const MachineView& view);

}  // namespace analyzer
