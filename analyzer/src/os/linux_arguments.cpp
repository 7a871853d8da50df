#include "os/linux_arguments.h"

#include <fmt/format.h>

namespace analyzer {
namespace {

constexpr size_t kMaxPathComponent = 256;
constexpr size_t kMaxPath = 4096;
constexpr size_t kMaxArgument = 4096;     // of MAX_ARG_STRLEN (128 KiB): enough to show
constexpr uint64_t kMaxArguments = 1024;  // a damaged argc must not read forever
constexpr size_t kMaxMountDepth = 64;

std::vector<LinearMap> linux_maps(const PhysicalMemory& memory) {
  return {{kLinuxStartKernelMap, 0, 1ull << 30}, {kLinuxPageOffset, 0, memory.size()}};
}

}  // namespace

uint64_t linux_current_task(const LinuxModel& model, const Profile& profile, uint64_t gs_base) {
  uint64_t address = profile.symbol("current_task");
  // SMP kernels link per-CPU variables at offsets from 0; UP ones at their address.
  if (address < kLinuxStartKernelMap) address += gs_base;
  return model.memory().read_u64(address, "current_task");
}

LinuxTaskIdentity linux_task_identity(const LinuxModel& model, uint64_t task) {
  const StructView view = model.object("task_struct", task);
  LinuxTaskIdentity identity;
  identity.address = task;
  identity.pid = view.signed_value("pid");
  identity.tgid = view.signed_value("tgid");
  identity.comm = view.char_array("comm");
  return identity;
}

std::string linux_filename(const LinuxModel& model, uint64_t filename) {
  const uint64_t name = model.object("filename", filename).unsigned_value("name");
  return model.memory().read_c_string(name, kMaxPath, "filename.name");
}

std::string linux_file_path(const LinuxModel& model, uint64_t file) {
  const StructView view = model.object("file", file);
  uint64_t dentry = view.unsigned_value("f_path.dentry");
  const uint64_t vfsmount = view.unsigned_value("f_path.mnt");
  // struct mount embeds the vfsmount the path points to (real_mount()).
  StructView mount = model.object("mount", vfsmount - model.object("mount", 0).address_of("mnt"));
  std::vector<std::string> parts;
  for (size_t depth = 0; depth < kMaxMountDepth; ++depth) {
    const uint64_t root = mount.unsigned_value("mnt.mnt_root");
    for (size_t guard = 0; dentry != root && dentry != 0 && guard < kMaxPath; ++guard) {
      const StructView d = model.object("dentry", dentry);
      parts.push_back(model.memory().read_c_string(d.unsigned_value("d_name.name"),
                                                   kMaxPathComponent, "dentry.d_name"));
      const uint64_t parent = d.unsigned_value("d_parent");
      if (parent == dentry) break;  // the root of a filesystem not mounted (pipes, sockets)
      dentry = parent;
    }
    const uint64_t parent_mount = mount.unsigned_value("mnt_parent");
    if (parent_mount == mount.address() || parent_mount == 0) break;
    dentry = mount.unsigned_value("mnt_mountpoint");
    mount = model.object("mount", parent_mount);
  }
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) path += "/" + *it;
  return path.empty() ? "/" : path;
}

std::vector<std::string> linux_exec_arguments(const LinuxModel& model, uint64_t binprm) {
  const StructView bprm = model.object("linux_binprm", binprm);
  const uint64_t argc = static_cast<uint64_t>(bprm.signed_value("argc"));
  if (argc > kMaxArguments)
    throw GuestReadError(fmt::format("linux_binprm at {:#x} has argc {} (more than {})", binprm,
                                     argc, kMaxArguments));
  const uint64_t pgd = bprm.deref("mm").unsigned_value("pgd");
  const auto pgd_physical = model.memory().translate(pgd);
  if (!pgd_physical)
    throw GuestReadError(
        fmt::format("the new program's page table {:#x} (linux_binprm at {:#x}) "
                    "is not mapped",
                    pgd, binprm));
  const PhysicalMemory& ram = model.memory().physical();
  const KernelMemory new_program(ram, *pgd_physical, linux_maps(ram));
  std::vector<std::string> argv;
  uint64_t at = bprm.unsigned_value("p");
  for (uint64_t i = 0; i < argc; ++i) {
    std::string argument =
        new_program.read_c_string(at, kMaxArgument, fmt::format("argv[{}] of the exec", i));
    at += argument.size() + 1;
    argv.push_back(std::move(argument));
  }
  return argv;
}

std::string linux_exec_filename(const LinuxModel& model, uint64_t binprm) {
  const uint64_t name = model.object("linux_binprm", binprm).unsigned_value("filename");
  return model.memory().read_c_string(name, kMaxPath, "linux_binprm.filename");
}

LinuxPacket linux_packet(const LinuxModel& model, uint64_t skb, size_t max_head) {
  const StructView buffer = model.object("sk_buff", skb);
  LinuxPacket packet;
  packet.length = buffer.unsigned_value("len");
  if (const uint64_t device = buffer.unsigned_value("dev"); device != 0)
    packet.device = model.object("net_device", device).char_array("name");
  std::string head(std::min<uint64_t>(packet.length, max_head), '\0');
  if (model.memory().try_read(buffer.unsigned_value("data"),
                              {reinterpret_cast<uint8_t*>(head.data()), head.size()}))
    packet.head = std::move(head);
  return packet;
}

}  // namespace analyzer
