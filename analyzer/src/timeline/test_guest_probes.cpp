// The test-guest kernel's system calls (tests/guests/kernel/sched.c): user
// code executes ud2, the #UD trap stub calls trap_dispatch(frame), and
// on_syscall (inlined into trap_dispatch) reads the number from frame->rax
// and the arguments from rdi, rsi, rdx, r10, writing the result back into
// frame->rax. So one breakpoint on trap_dispatch sees every trap; the ones
// that are a ud2 from CPL3 are system calls. At trap_dispatch's return the
// caller's frame tells what happened: rip moved past the ud2 (completed,
// result in rax), or stayed on it (blocked; the call is restarted and
// counted again when the task is woken, as the guest's own counters do).
#include <fmt/format.h>

#include "machine/vcpu_state.h"
#include "os/kernel_memory.h"
#include "os/struct_view.h"
#include "os/test_guest_model.h"
#include "timeline/probe.h"

namespace analyzer {
namespace {

constexpr uint64_t kInvalidOpcodeVector = 6;
constexpr uint64_t kSysExit = 0;
constexpr uint64_t kSysWrite = 1;
constexpr uint64_t kSysNetSend = 13;
constexpr uint64_t kCr0Paging = 1ull << 31;

KernelMemory guest_memory(const TimeTraveler& traveler) {
  const auto& sregs = traveler.vcpu().sregs;
  std::optional<uint64_t> root;
  if (sregs.cr0 & kCr0Paging) root = sregs.cr3 & 0x000f'ffff'ffff'f000ull;
  // The guest identity-maps its RAM.
  return KernelMemory(traveler.memory(), root, {{0, 0, traveler.memory().size()}});
}

class SyscallProbe final : public Probe {
 public:
  SyscallProbe(const Profile& profile, uint64_t address)
      : Probe("trap_dispatch", address, kEventSyscall, /*awaits_return=*/true),
        profile_(profile),
        table_address_(profile.symbol("rr_task_table")) {}

  EntryDecision on_entry(const TimeTraveler& traveler) const override {
    const KernelMemory memory = guest_memory(traveler);
    const uint64_t frame_address = traveler.vcpu().regs.rdi;
    const StructView frame(profile_, memory, "rr_trap_frame", frame_address);
    EntryDecision decision;
    if (frame.unsigned_value("vector") != kInvalidOpcodeVector ||
        (frame.unsigned_value("cs") & 3) != 3)
      return decision;
    const uint64_t rip = frame.unsigned_value("rip");
    std::array<uint8_t, 2> opcode{};
    if (!memory.try_read(rip, opcode) || opcode[0] != 0x0f || opcode[1] != 0x0b)
      return decision;  // another invalid opcode: the kernel kills the task

    TimelineEvent event;
    event.kind = kind();
    event.function = function();
    event.syscall_number = static_cast<int64_t>(frame.unsigned_value("rax"));
    const char* name = test_guest_syscall_name(static_cast<unsigned>(event.syscall_number));
    event.syscall_name = name != nullptr ? name : "";
    // The ABI's four argument registers (schemas/test-guest-abi.md).
    event.args = {frame.unsigned_value("rdi"), frame.unsigned_value("rsi"),
                  frame.unsigned_value("rdx"), frame.unsigned_value("r10")};
    const StructView table(profile_, memory, "rr_task_table", table_address_);
    const StructView task =
        table.at("rr_task", table.address_of("tasks") +
                                table.unsigned_value("current") * profile_.type_size("rr_task"));
    event.pid = static_cast<int64_t>(task.unsigned_value("pid"));
    event.comm = task.char_array("name");
    if (event.syscall_number == static_cast<int64_t>(kSysWrite) ||
        event.syscall_number == static_cast<int64_t>(kSysNetSend)) {
      event.length = event.args[1];
      std::string data(std::min<uint64_t>(event.length, kTimelineDataLimit), '\0');
      if (memory.try_read(event.args[0], {reinterpret_cast<uint8_t*>(data.data()), data.size()}))
        event.data = std::move(data);
    }
    decision.event = std::move(event);
    decision.await_return = true;
    decision.saved = {frame_address, rip};
    return decision;
  }

  void on_return(const TimeTraveler& traveler, const std::array<uint64_t, 2>& saved,
                 TimelineEvent& event) const override {
    const KernelMemory memory = guest_memory(traveler);
    const StructView frame(profile_, memory, "rr_trap_frame", saved[0]);
    // EXIT never resumes its frame; a blocked call resumes on the ud2 again.
    if (event.syscall_number == static_cast<int64_t>(kSysExit)) return;
    if (frame.unsigned_value("rip") == saved[1]) return;
    event.result = frame.signed_value("rax");
  }

 private:
  const Profile& profile_;
  uint64_t table_address_;
};

}  // namespace

std::vector<std::string> test_guest_timeline_kinds() { return {kEventSyscall}; }

Probes test_guest_probes(const Profile& profile, const std::set<std::string>& kinds) {
  Probes probes;
  if (!kinds.empty() && !kinds.count(kEventSyscall)) return probes;
  probes.push_back(std::make_unique<SyscallProbe>(profile, profile.symbol("trap_dispatch")));
  return probes;
}

}  // namespace analyzer
