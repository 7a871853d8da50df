// Linux 6.1 kernel functions the timeline stops on, and what their
// arguments mean there (x86_64 SysV ABI: rdi, rsi, rdx, rcx, r8, r9).
//
//   process_create  wake_up_new_task(struct task_struct *child)
//   exec            bprm_execve(struct linux_binprm *bprm, ...)    -> 0 / -errno
//   exit            do_exit(long code)
//   file_open       do_filp_open(int dfd, struct filename *name, ...)  -> file* / ERR_PTR
//   file_write      vfs_write / __kernel_write(struct file *, buf, count, pos) -> bytes / -errno
//   net_send        __dev_queue_xmit(struct sk_buff *skb, ...)
//   net_receive     napi_gro_receive(napi, struct sk_buff *skb), netif_receive_skb(skb)
//
// bprm_execve is where every exec goes (execve, execveat and the kernel's
// own kernel_execve of /init) once the arguments are copied; __kernel_write
// is how the kernel writes files itself (unpacking the initramfs), which
// does not pass through vfs_write.
#include <fmt/format.h>

#include "machine/vcpu_state.h"
#include "os/guest_session.h"
#include "os/linux_arguments.h"
#include "timeline/probe.h"

namespace analyzer {
namespace {

constexpr uint64_t kMaxErrno = 4095;  // IS_ERR_VALUE: the last 4095 addresses are -errno

class LinuxProbe : public Probe {
 public:
  LinuxProbe(const Profile& profile, std::string function, uint64_t address, std::string kind,
             bool await_return)
      : Probe(std::move(function), address, std::move(kind), await_return),
        profile_(profile),
        await_return_(await_return) {}

  EntryDecision on_entry(const TimeTraveler& traveler) const final {
    const LinuxModel model(profile_, machine_view(traveler));
    const auto& regs = traveler.vcpu().regs;
    TimelineEvent event;
    event.kind = kind();
    event.function = function();
    const LinuxTaskIdentity current = linux_task_identity(
        model, linux_current_task(model, profile_, traveler.vcpu().sregs.gs.base));
    event.pid = current.pid;
    event.comm = current.comm;
    const std::array<uint64_t, 6> args = {regs.rdi, regs.rsi, regs.rdx, regs.rcx, regs.r8, regs.r9};
    decode(model, args, event);
    EntryDecision decision;
    decision.event = std::move(event);
    decision.await_return = await_return_;
    return decision;
  }

 protected:
  virtual void decode(const LinuxModel& model, const std::array<uint64_t, 6>& args,
                      TimelineEvent& event) const = 0;
  const Profile& profile_;

 private:
  bool await_return_;
};

class ProcessCreateProbe final : public LinuxProbe {
 public:
  using LinuxProbe::LinuxProbe;
  void decode(const LinuxModel& model, const std::array<uint64_t, 6>& args,
              TimelineEvent& event) const override {
    event.child_pid = linux_task_identity(model, args[0]).pid;
  }
};

class ExecProbe final : public LinuxProbe {
 public:
  using LinuxProbe::LinuxProbe;
  void decode(const LinuxModel& model, const std::array<uint64_t, 6>& args,
              TimelineEvent& event) const override {
    event.path = linux_exec_filename(model, args[0]);
    event.argv = linux_exec_arguments(model, args[0]);
  }
};

class ExitProbe final : public LinuxProbe {
 public:
  using LinuxProbe::LinuxProbe;
  void decode(const LinuxModel&, const std::array<uint64_t, 6>& args,
              TimelineEvent& event) const override {
    event.exit_code = static_cast<int64_t>(args[0]);
  }
};

class FileOpenProbe final : public LinuxProbe {
 public:
  using LinuxProbe::LinuxProbe;
  void decode(const LinuxModel& model, const std::array<uint64_t, 6>& args,
              TimelineEvent& event) const override {
    event.path = linux_filename(model, args[1]);
  }
  // do_filp_open returns a struct file*: 0 for success, -errno for ERR_PTR.
  void on_return(const TimeTraveler& traveler, const std::array<uint64_t, 2>&,
                 TimelineEvent& event) const override {
    const uint64_t rax = traveler.vcpu().regs.rax;
    event.result = rax >= -kMaxErrno ? static_cast<int64_t>(rax) : 0;
  }
};

class FileWriteProbe final : public LinuxProbe {
 public:
  using LinuxProbe::LinuxProbe;
  void decode(const LinuxModel& model, const std::array<uint64_t, 6>& args,
              TimelineEvent& event) const override {
    event.path = linux_file_path(model, args[0]);
    event.length = args[2];
    std::string data(std::min<uint64_t>(event.length, kTimelineDataLimit), '\0');
    if (model.memory().try_read(args[1], {reinterpret_cast<uint8_t*>(data.data()), data.size()}))
      event.data = std::move(data);
  }
};

class PacketProbe final : public LinuxProbe {
 public:
  PacketProbe(const Profile& profile, std::string function, uint64_t address, std::string kind,
              size_t skb_argument)
      : LinuxProbe(profile, std::move(function), address, std::move(kind), false),
        skb_argument_(skb_argument) {}
  void decode(const LinuxModel& model, const std::array<uint64_t, 6>& args,
              TimelineEvent& event) const override {
    LinuxPacket packet = linux_packet(model, args[skb_argument_], kTimelineDataLimit);
    event.path = std::move(packet.device);
    event.length = packet.length;
    event.data = std::move(packet.head);
  }

 private:
  size_t skb_argument_;
};

struct FunctionSpec {
  const char* kind;
  const char* function;
  std::function<std::unique_ptr<Probe>(const Profile&, uint64_t address)> make;
};

template <class P>
std::function<std::unique_ptr<Probe>(const Profile&, uint64_t)> make_probe(const char* kind,
                                                                           const char* function,
                                                                           bool await_return) {
  return [=](const Profile& profile, uint64_t address) {
    return std::make_unique<P>(profile, function, address, kind, await_return);
  };
}

std::function<std::unique_ptr<Probe>(const Profile&, uint64_t)> make_packet_probe(
    const char* kind, const char* function, size_t skb_argument) {
  return [=](const Profile& profile, uint64_t address) {
    return std::make_unique<PacketProbe>(profile, function, address, kind, skb_argument);
  };
}

// In pass order: the timeline replays once per group of these that fits the
// debug registers (timeline.cpp).
const std::vector<FunctionSpec>& function_specs() {
  static const std::vector<FunctionSpec> specs = {
      {kEventProcessCreate, "wake_up_new_task",
       make_probe<ProcessCreateProbe>(kEventProcessCreate, "wake_up_new_task", false)},
      {kEventExec, "bprm_execve", make_probe<ExecProbe>(kEventExec, "bprm_execve", true)},
      {kEventExit, "do_exit", make_probe<ExitProbe>(kEventExit, "do_exit", false)},
      {kEventFileOpen, "do_filp_open",
       make_probe<FileOpenProbe>(kEventFileOpen, "do_filp_open", true)},
      {kEventFileWrite, "vfs_write",
       make_probe<FileWriteProbe>(kEventFileWrite, "vfs_write", true)},
      {kEventFileWrite, "__kernel_write",
       make_probe<FileWriteProbe>(kEventFileWrite, "__kernel_write", true)},
      {kEventNetSend, "__dev_queue_xmit", make_packet_probe(kEventNetSend, "__dev_queue_xmit", 0)},
      {kEventNetReceive, "napi_gro_receive",
       make_packet_probe(kEventNetReceive, "napi_gro_receive", 1)},
      {kEventNetReceive, "netif_receive_skb",
       make_packet_probe(kEventNetReceive, "netif_receive_skb", 0)},
  };
  return specs;
}

}  // namespace

std::vector<std::string> linux_timeline_kinds() {
  return {kEventProcessCreate, kEventExec,    kEventExit,      kEventFileOpen,
          kEventFileWrite,     kEventNetSend, kEventNetReceive};
}

Probes linux_probes(const Profile& profile, const std::set<std::string>& kinds) {
  Probes probes;
  std::map<std::string, std::vector<std::string>> missing;
  for (const FunctionSpec& spec : function_specs()) {
    if (!kinds.empty() && !kinds.count(spec.kind)) continue;
    if (auto address = profile.find_symbol(spec.function))
      probes.push_back(spec.make(profile, *address));
    else
      missing[spec.kind].push_back(spec.function);
  }
  // A kind asked for by name must be observable; with the default (all kinds)
  // a kernel built without networking simply has no network events.
  for (const std::string& kind : kinds) {
    const bool found = std::any_of(probes.begin(), probes.end(),
                                   [&](const auto& probe) { return probe->kind() == kind; });
    if (!found && missing.count(kind))
      throw librr::Error(
          fmt::format("profile {} has none of the kernel functions for {} events "
                      "({}): another kernel version or configuration?",
                      profile.source(), kind, fmt::join(missing[kind], ", ")));
  }
  return probes;
}

}  // namespace analyzer
