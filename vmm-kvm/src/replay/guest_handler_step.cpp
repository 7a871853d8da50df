#include "replay/guest_handler_step.h"

#include <fmt/format.h>

#include <cstring>

#include "librr/error.h"
#include "replay/hardware_breakpoints.h"

namespace vmm {
namespace {

constexpr uint8_t kDebugVector = 1;
constexpr uint64_t kTrapFlag = 1ull << 8;
constexpr uint64_t kCr0Paging = 1ull << 31;
constexpr uint64_t kPresent = 1ull << 0, kLargePage = 1ull << 7;
constexpr uint64_t kAddressMask = 0x000ffffffffff000ull;
constexpr uint64_t kPageSize = 4096;

uint64_t load_u64(const uint8_t* p) {
  uint64_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

// Guest-physical address of `address`, or throws.
uint64_t to_physical(Machine& machine, const kvm_sregs& sregs, uint64_t address) {
  if (!(sregs.cr0 & kCr0Paging)) return address;
  const GuestMemory ram = machine.memory();
  uint64_t table = sregs.cr3 & kAddressMask;
  // PML4, PDPT, PD, PT: 9 bits each from bit 39 down; levels 1 and 2 may map large pages.
  for (int level = 3; level >= 0; --level) {
    const uint64_t index = (address >> (12 + 9 * level)) & 0x1ff;
    uint64_t entry = 0;
    if (!ram.read(table + index * 8, &entry, sizeof entry))
      throw librr::Error(
          fmt::format("page table at {:#x} (for {:#x}) lies outside guest RAM", table, address));
    if (!(entry & kPresent))
      throw librr::Error(
          fmt::format("guest address {:#x} is not mapped (CR3 {:#x})", address, sregs.cr3));
    if ((level == 1 || level == 2) && (entry & kLargePage)) {
      const uint64_t page_size = 1ull << (12 + 9 * level);
      return (entry & kAddressMask & ~(page_size - 1)) | (address & (page_size - 1));
    }
    table = entry & kAddressMask;
  }
  return table | (address & (kPageSize - 1));
}

// Calls visit(host pointer, length) for each piece of [address, +length) within one page.
template <class Visit>
void for_each_piece(Machine& machine, const kvm_sregs& sregs, uint64_t address, uint64_t length,
                    Visit&& visit) {
  while (length > 0) {
    const uint64_t piece = std::min(length, kPageSize - (address & (kPageSize - 1)));
    const uint64_t physical = to_physical(machine, sregs, address);
    uint8_t* host = machine.memory().translate(physical, piece);
    if (!host)
      throw librr::Error(
          fmt::format("guest address {:#x} maps to {:#x}, outside guest RAM", address, physical));
    visit(host, piece);
    address += piece;
    length -= piece;
  }
}

}  // namespace

uint64_t error_code_bytes(uint8_t vector) {
  switch (vector) {
    case 8:
    case 10:
    case 11:
    case 12:
    case 13:
    case 14:
    case 17:
    case 21:
    case 29:
    case 30:
      return 8;
    default:
      return 0;
  }
}

InterruptFrame InterruptFrame::parse(std::span<const uint8_t> bytes) {
  if (bytes.size() < kBytes)
    throw librr::Error(fmt::format("interrupt frame: {} bytes, expected {}", bytes.size(), kBytes));
  InterruptFrame frame;
  frame.rip = load_u64(&bytes[0]);
  frame.cs = load_u64(&bytes[8]);
  frame.rflags = load_u64(&bytes[16]);
  frame.rsp = load_u64(&bytes[24]);
  frame.ss = load_u64(&bytes[32]);
  return frame;
}

void InterruptFrame::return_to(kvm_regs& regs) const {
  regs.rip = rip;
  regs.rflags = rflags;
  regs.rsp = rsp;
}

std::vector<uint8_t> read_guest_virtual(Machine& machine, const kvm_sregs& sregs, uint64_t address,
                                        uint64_t length) {
  std::vector<uint8_t> bytes;
  bytes.reserve(length);
  for_each_piece(machine, sregs, address, length, [&](const uint8_t* host, uint64_t piece) {
    bytes.insert(bytes.end(), host, host + piece);
  });
  return bytes;
}

void write_guest_virtual(Machine& machine, const kvm_sregs& sregs, uint64_t address,
                         std::span<const uint8_t> bytes) {
  uint64_t done = 0;
  for_each_piece(machine, sregs, address, bytes.size(), [&](uint8_t* host, uint64_t piece) {
    std::memcpy(host, bytes.data() + done, piece);
    done += piece;
  });
}

GuestHandler GuestHandler::for_vector(Machine& machine, const kvm_sregs& sregs, uint8_t vector) {
  constexpr uint64_t kGateBytes = 16;
  if ((vector + 1) * kGateBytes - 1 > sregs.idt.limit)
    throw librr::Error(fmt::format("vector {} lies beyond the guest's IDT (limit {:#x})", vector,
                                   sregs.idt.limit));
  const std::vector<uint8_t> gate =
      read_guest_virtual(machine, sregs, sregs.idt.base + vector * kGateBytes, kGateBytes);
  GuestHandler handler;
  uint16_t low = 0, middle = 0;
  uint32_t high = 0;
  std::memcpy(&low, &gate[0], 2);
  std::memcpy(&middle, &gate[6], 2);
  std::memcpy(&high, &gate[8], 4);
  handler.entry = uint64_t{low} | uint64_t{middle} << 16 | uint64_t{high} << 32;
  // The stack: the gate's IST slot if it names one, else the TSS's RSP0.
  const unsigned ist = gate[4] & 7;
  const uint64_t tss_offset = ist ? 36 + 8 * (ist - 1) : 4;
  const std::vector<uint8_t> top =
      read_guest_virtual(machine, sregs, sregs.tr.base + tss_offset, 8);
  handler.frame_address = (load_u64(top.data()) & ~uint64_t{15}) - InterruptFrame::kBytes;
  return handler;
}

kvm_segment segment_from_gdt(Machine& machine, const kvm_sregs& sregs, uint64_t selector) {
  const uint64_t index = selector & ~uint64_t{7};
  if ((selector & 4) || index + 7 > sregs.gdt.limit)
    throw librr::Error(fmt::format("selector {:#x} is not in the guest's GDT (limit {:#x})",
                                   selector, sregs.gdt.limit));
  const uint64_t d = load_u64(read_guest_virtual(machine, sregs, sregs.gdt.base + index, 8).data());
  kvm_segment segment{};
  segment.selector = static_cast<uint16_t>(selector);
  segment.base = ((d >> 16) & 0xffffff) | ((d >> 56) << 24);
  const uint32_t limit = static_cast<uint32_t>((d & 0xffff) | ((d >> 32) & 0xf0000));
  segment.g = (d >> 55) & 1;
  segment.limit = segment.g ? (limit << 12) | 0xfff : limit;
  segment.type = (d >> 40) & 0xf;
  segment.s = (d >> 44) & 1;
  segment.dpl = (d >> 45) & 3;
  segment.present = (d >> 47) & 1;
  segment.avl = (d >> 52) & 1;
  segment.l = (d >> 53) & 1;
  segment.db = (d >> 54) & 1;
  return segment;
}

HandlerStepResult step_caught_at_guest_handler(Machine& machine) {
  kvm::Vcpu& vcpu = machine.vcpu();
  const kvm_regs regs_before = vcpu.get_regs();
  const kvm_sregs sregs_before = vcpu.get_sregs();
  const kvm_debugregs debug_before = vcpu.get_debugregs();
  // At CPL0 before the kernel has an IDT and a TSS (early boot), no step can
  // reach user mode: a plain single step.
  const bool at_cpl0 = (sregs_before.cs.selector & 3) == 0;
  GuestHandler handler;
  std::vector<uint8_t> stack_before;
  bool catch_at_handler = false;
  try {
    handler = GuestHandler::for_vector(machine, sregs_before, kDebugVector);
    stack_before =
        read_guest_virtual(machine, sregs_before, handler.frame_address, InterruptFrame::kBytes);
    // Standing on the handler's first instruction, the breakpoint would stop
    // the vCPU before it runs; that instruction is at CPL0 anyway.
    catch_at_handler = regs_before.rip != handler.entry;
  } catch (const librr::Error&) {
    if (!at_cpl0) throw;
  }

  const uint64_t entry[] = {handler.entry};
  const Machine::Exit exit = run_with_hardware_breakpoints(
      machine, catch_at_handler ? std::span<const uint64_t>(entry) : std::span<const uint64_t>(),
      /*single_step=*/true);
  if (exit.kind == Machine::Exit::Kind::kSynchronous) return HandlerStepResult::kSynchronous;
  kvm_regs regs = vcpu.get_regs();
  if (!catch_at_handler || machine.run_state().exit_reason != KVM_EXIT_DEBUG ||
      regs.rip != handler.entry || regs.rsp != handler.frame_address)
    return HandlerStepResult::kOther;
  kvm_sregs sregs = vcpu.get_sregs();
  const InterruptFrame frame = InterruptFrame::parse(
      read_guest_virtual(machine, sregs, handler.frame_address, InterruptFrame::kBytes));
  if ((frame.cs & 3) != 3) return HandlerStepResult::kOther;  // a #DB of the kernel's own

  // Undo the delivery: registers from the frame, segments, debug registers
  // and the stack as they were. The step may have started at CPL0 (an iretq
  // to user mode, after which the host lets one user instruction trap).
  frame.return_to(regs);
  regs.rflags = (regs.rflags & ~kTrapFlag) | (regs_before.rflags & kTrapFlag);
  const bool same_segments =
      frame.cs == sregs_before.cs.selector && frame.ss == sregs_before.ss.selector;
  sregs.cs = same_segments ? sregs_before.cs : segment_from_gdt(machine, sregs, frame.cs);
  sregs.ss = same_segments ? sregs_before.ss : segment_from_gdt(machine, sregs, frame.ss);
  write_guest_virtual(machine, sregs_before, handler.frame_address, stack_before);
  vcpu.set_sregs(sregs);
  vcpu.set_regs(regs);
  vcpu.set_debugregs(debug_before);
  return HandlerStepResult::kStepped;
}

}  // namespace vmm
