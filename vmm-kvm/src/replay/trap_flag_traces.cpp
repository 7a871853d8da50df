#include "replay/trap_flag_traces.h"

#include <cstring>

#include "librr/error.h"
#include "replay/guest_handler_step.h"
#include "replay/x86_prefixes.h"

namespace vmm {
namespace {

constexpr uint64_t kTrapFlag = 1ull << 8;
constexpr uint64_t kTssRsp0Offset = 4;
constexpr size_t kMaxInstructionBytes = 15;

uint64_t load_u64(const uint8_t* p) {
  uint64_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

}  // namespace

// Address size, segment overrides, lock, rep and REX.W do not change what
// pushf stores; an operand-size prefix makes it 16 bits.
uint64_t pushf_operand_bytes(std::span<const uint8_t> code) {
  const InstructionPrefixes prefixes = scan_prefixes(code);
  if (prefixes.opcode >= code.size() || code[prefixes.opcode] != 0x9c) return 0;
  return prefixes.operand_size ? 2 : 8;
}

TrapFlagTraces::TrapFlagTraces(Machine& machine) : machine_(machine) {
  kvm::Vcpu& vcpu = machine.vcpu();
  regs_before_ = vcpu.get_regs();
  sregs_before_ = vcpu.get_sregs();
  if (regs_before_.rflags & kTrapFlag) return;  // the guest steps itself: TF is its own
  const bool at_cpl3 = (sregs_before_.cs.selector & 3) == 3;
  try {
    FrameSite site;
    site.top = regs_before_.rsp & ~uint64_t{15};
    if (at_cpl3) {
      const std::vector<uint8_t> rsp0 =
          read_guest_virtual(machine, sregs_before_, sregs_before_.tr.base + kTssRsp0Offset, 8);
      site.top = load_u64(rsp0.data()) & ~uint64_t{15};
    }
    const std::vector<uint8_t> bytes =
        read_guest_virtual(machine, sregs_before_, site.top - kFrameBytes, kFrameBytes);
    std::memcpy(site.before.data(), bytes.data(), kFrameBytes);
    sites_.push_back(site);
  } catch (const librr::Error&) {
    // No stack mapped (early boot): no frame can be pushed without a fault
    // the recording would have had as well.
  }
  try {
    pushf_bytes_ = pushf_operand_bytes(
        read_guest_virtual(machine, sregs_before_, regs_before_.rip, kMaxInstructionBytes));
  } catch (const librr::Error&) {
    // The instruction straddles into an unmapped page: then it is no pushf
    // that completes. Read what is mapped.
    pushf_bytes_ = 0;
  }
}

int TrapFlagTraces::remove() {
  if (regs_before_.rflags & kTrapFlag) return 0;
  int removed = 0;
  for (const FrameSite& site : sites_)
    if (remove_from_frame(site)) ++removed;
  if (pushf_bytes_ && remove_from_pushf()) ++removed;
  return removed;
}

// The frame the CPU pushed for an event taken at the instruction the step
// started at: from the top down SS, RSP, RFLAGS, CS, RIP (then perhaps an
// error code). Recognised by the interrupted context it records, so that
// other stores below the stack (a kernel push) are never touched.
bool TrapFlagTraces::remove_from_frame(const FrameSite& site) {
  const std::vector<uint8_t> bytes =
      read_guest_virtual(machine_, sregs_before_, site.top - kFrameBytes, kFrameBytes);
  if (std::memcmp(bytes.data(), site.before.data(), kFrameBytes) == 0) return false;
  const uint8_t* frame = bytes.data() + kFrameBytes - InterruptFrame::kBytes;
  const InterruptFrame pushed =
      InterruptFrame::parse({frame, static_cast<size_t>(InterruptFrame::kBytes)});
  const bool same_context = pushed.cs == sregs_before_.cs.selector &&
                            pushed.ss == sregs_before_.ss.selector &&
                            pushed.rsp == regs_before_.rsp && pushed.rip >= regs_before_.rip &&
                            pushed.rip <= regs_before_.rip + kMaxInstructionBytes;
  if (!same_context || !(pushed.rflags & kTrapFlag)) return false;
  const uint64_t rflags = pushed.rflags & ~kTrapFlag;
  uint8_t stored[8];
  std::memcpy(stored, &rflags, sizeof stored);
  constexpr uint64_t kRflagsSlot = 2 * 8;  // below the top: SS, RSP, then RFLAGS
  write_guest_virtual(machine_, sregs_before_, site.top - InterruptFrame::kBytes + kRflagsSlot,
                      stored);
  return true;
}

bool TrapFlagTraces::remove_from_pushf() {
  const kvm_regs regs = machine_.vcpu().get_regs();
  if (regs.rsp != regs_before_.rsp - pushf_bytes_ || regs.rip == regs_before_.rip) return false;
  const kvm_sregs sregs = machine_.vcpu().get_sregs();
  std::vector<uint8_t> stored = read_guest_virtual(machine_, sregs, regs.rsp, pushf_bytes_);
  if (!(stored[1] & (kTrapFlag >> 8))) return false;
  stored[1] &= static_cast<uint8_t>(~(kTrapFlag >> 8));
  write_guest_virtual(machine_, sregs, regs.rsp, stored);
  return true;
}

}  // namespace vmm
