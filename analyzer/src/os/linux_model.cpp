#include "os/linux_model.h"

#include <fmt/format.h>

#include <algorithm>

namespace analyzer {
namespace {

constexpr uint64_t kPageTableAddressMask = 0x000f'ffff'ffff'f000ull;
constexpr uint64_t kPfKthread = 0x00200000;  // task_struct.flags: a kernel thread
constexpr size_t kMaxListLength = 1 << 20;   // a corrupt list must not loop forever

// The containers of a kernel list_head list, in list order (head excluded).
std::vector<uint64_t> list_containers(const KernelMemory& memory, uint64_t head,
                                      uint64_t member_offset, const std::string& what) {
  std::vector<uint64_t> result;
  uint64_t node = memory.read_u64(head, what + " list head");
  while (node != head) {
    if (result.size() >= kMaxListLength)
      throw GuestReadError(
          fmt::format("{}: list at {:#x} does not come back to its head", what, head));
    result.push_back(node - member_offset);
    node = memory.read_u64(node, what + " list node");
  }
  return result;
}

// ps's one-letter states (fs/proc/array.c), from __state and exit_state.
std::string task_state_letter(uint64_t state, uint64_t exit_state) {
  if (exit_state & 0x20) return "Z";  // EXIT_ZOMBIE
  if (exit_state & 0x10) return "X";  // EXIT_DEAD
  if (state == 0) return "R";
  if ((state & 0x402) == 0x402) return "I";  // TASK_IDLE = UNINTERRUPTIBLE | NOLOAD
  if (state & 0x1) return "S";
  if (state & 0x2) return "D";
  if (state & 0x4) return "T";
  if (state & 0x8) return "t";
  return fmt::format("?{:x}", state);
}

std::vector<LinearMap> linux_linear_maps(const PhysicalMemory& memory) {
  return {{kLinuxStartKernelMap, 0, 1ull << 30}, {kLinuxPageOffset, 0, memory.size()}};
}

std::optional<uint64_t> linux_page_table_root(const Profile& profile, const MachineView& view) {
  if (view.paging_enabled && (view.cr3 & kPageTableAddressMask) != 0)
    return view.cr3 & kPageTableAddressMask;
  if (auto top = profile.find_symbol("init_top_pgt")) return *top - kLinuxStartKernelMap;
  return std::nullopt;
}

}  // namespace

LinuxModel::LinuxModel(const Profile& profile, const MachineView& view)
    : profile_(profile),
      memory_(view.memory, linux_page_table_root(profile, view), linux_linear_maps(view.memory)) {
  const auto expected = profile.linux_banner();
  if (!expected)
    throw ProfileMismatch("profile " + profile.source() +
                          " carries no linux_banner, so it cannot be checked against the guest; "
                          "regenerate it with rr-analyze profile generate");
  const uint64_t address = profile.symbol("linux_banner");
  std::string in_memory;
  try {
    in_memory = memory_.read_c_string(address, expected->size() + 1, "linux_banner");
  } catch (const GuestReadError& e) {
    throw ProfileMismatch("profile " + profile.source() + " does not fit this guest: " + e.what());
  }
  if (in_memory != *expected)
    throw ProfileMismatch(fmt::format(
        "profile {} was made for another kernel build: its linux_banner is \"{}\" but the "
        "guest's memory at {:#x} holds \"{}\"",
        profile.source(), *expected, address, in_memory.substr(0, 200)));
  banner_ = in_memory;
}

Process LinuxModel::read_task(const StructView& task) const {
  Process p;
  p.address = task.address();
  p.pid = task.signed_value("pid");
  p.tgid = task.signed_value("tgid");
  p.name = task.char_array("comm");
  const uint64_t parent = task.unsigned_value("real_parent");
  p.parent_pid = parent == 0 || parent == task.address()
                     ? (p.pid == 0 ? -1 : 0)
                     : object("task_struct", parent).signed_value("pid");
  const std::string state_field = task.has("__state") ? "__state" : "state";
  p.state = task_state_letter(task.unsigned_value(state_field), task.unsigned_value("exit_state"));
  p.kernel_thread = (task.unsigned_value("flags") & kPfKthread) != 0 || p.pid == 0;
  if (task.unsigned_value("cred") != 0) {
    const StructView cred = task.deref("cred");
    p.uid = static_cast<int64_t>(cred.unsigned_value("uid.val"));
    p.gid = static_cast<int64_t>(cred.unsigned_value("gid.val"));
  }
  if (const uint64_t mm = task.unsigned_value("mm"); mm != 0) {
    const uint64_t pgd = object("mm_struct", mm).unsigned_value("pgd");
    p.page_table = memory_.translate(pgd).value_or(0);
  }
  return p;
}

std::vector<Process> LinuxModel::processes() const {
  const uint64_t init_task = profile_.symbol("init_task");
  const uint64_t tasks_offset = profile_.offset_of("task_struct", "tasks");
  std::vector<uint64_t> leaders = {init_task};
  for (uint64_t task :
       list_containers(memory_, init_task + tasks_offset, tasks_offset, "init_task.tasks"))
    leaders.push_back(task);
  std::vector<Process> result;
  const auto thread_field = profile_.find_field("task_struct", "thread_group");
  for (uint64_t leader : leaders) {
    result.push_back(read_task(object("task_struct", leader)));
    if (!thread_field || leader == init_task) continue;
    // Threads other than the leader hang off its thread_group list.
    for (uint64_t thread : list_containers(memory_, leader + thread_field->offset,
                                           thread_field->offset, "task_struct.thread_group"))
      result.push_back(read_task(object("task_struct", thread)));
  }
  std::stable_sort(result.begin(), result.end(),
                   [](const Process& a, const Process& b) { return a.pid < b.pid; });
  return result;
}

std::string LinuxModel::dentry_path(uint64_t mount_address) const {
  std::vector<std::string> parts;
  StructView mount = object("mount", mount_address);
  uint64_t dentry = mount.unsigned_value("mnt.mnt_root");
  for (size_t guard = 0; guard < 4096; ++guard) {
    const uint64_t root = mount.unsigned_value("mnt.mnt_root");
    while (dentry != root && dentry != 0) {
      const StructView d = object("dentry", dentry);
      parts.push_back(memory_.read_c_string(d.unsigned_value("d_name.name"), 256, "d_name"));
      const uint64_t parent = d.unsigned_value("d_parent");
      if (parent == dentry) break;
      dentry = parent;
    }
    const uint64_t parent_mount = mount.unsigned_value("mnt_parent");
    if (parent_mount == mount.address() || parent_mount == 0) break;
    dentry = mount.unsigned_value("mnt_mountpoint");
    mount = object("mount", parent_mount);
  }
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) path += "/" + *it;
  return path.empty() ? "/" : path;
}

std::vector<Mount> LinuxModel::mounts() const {
  const StructView init_task = object("task_struct", profile_.symbol("init_task"));
  const StructView namespace_ = init_task.deref("nsproxy").deref("mnt_ns");
  const uint64_t list_offset = profile_.offset_of("mount", "mnt_list");
  std::vector<Mount> result;
  for (uint64_t address :
       list_containers(memory_, namespace_.address_of("list"), list_offset, "mnt_namespace.list")) {
    const StructView mount = object("mount", address);
    Mount m;
    if (const uint64_t device = mount.unsigned_value("mnt_devname"); device != 0)
      m.device = memory_.read_c_string(device, 256, "mount.mnt_devname");
    const StructView super = mount.member("mnt").deref("mnt_sb");
    m.fs_type = memory_.read_c_string(super.deref("s_type").unsigned_value("name"), 64,
                                      "file_system_type.name");
    m.path = dentry_path(address);
    result.push_back(std::move(m));
  }
  return result;
}

std::vector<NetDevice> LinuxModel::net_devices() const {
  const StructView init_net = object("net", profile_.symbol("init_net"));
  const uint64_t list_offset = profile_.offset_of("net_device", "dev_list");
  std::vector<NetDevice> result;
  for (uint64_t address : list_containers(memory_, init_net.address_of("dev_base_head"),
                                          list_offset, "init_net.dev_base_head")) {
    const StructView device = object("net_device", address);
    NetDevice d;
    d.name = device.char_array("name");
    d.index = device.signed_value("ifindex");
    d.mtu = device.unsigned_value("mtu");
    d.flags = device.unsigned_value("flags");
    const uint64_t length = device.unsigned_value("addr_len");
    if (const uint64_t mac = device.unsigned_value("dev_addr"); mac != 0 && length > 0) {
      std::vector<uint8_t> bytes(std::min<uint64_t>(length, 32));
      memory_.read(mac, bytes, "net_device.dev_addr");
      for (size_t i = 0; i < bytes.size(); ++i)
        d.mac += fmt::format("{}{:02x}", i == 0 ? "" : ":", bytes[i]);
    }
    result.push_back(std::move(d));
  }
  return result;
}

}  // namespace analyzer
