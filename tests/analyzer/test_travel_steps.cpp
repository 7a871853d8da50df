// Single steps are exactly one instruction each, at CPL0 and CPL3, and leave
// no trace in the guest (docs/analyzer.md, "Single steps"). On kvm_pvm a
// CPL3 step is caught at the guest's #DB handler, a step over the kernel's
// iretq to user mode stops with an int3 at the return address, and the trap
// flag the host sets during a step is cleared from every frame the step
// pushed. Checked on real recordings against what the guest code itself
// says: the successor of each user instruction (Capstone), the frame an
// iretq pops, the iteration count of a native loop, and a replay that goes
// on from the stepped machine to the end of the recording with every state
// digest matching.
#include <capstone/capstone.h>
#include <fmt/format.h>

#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include "librr/log.h"
#include "librr/recording.h"
#include "machine/vcpu_state.h"
#include "profile/elf_file.h"
#include "test_travel_support.h"
#include "travel/time_traveler.h"

namespace {

using namespace travel_test;
using analyzer::StopReason;
using analyzer::TimeTraveler;

constexpr uint64_t kTrapFlag = 1ull << 8;
constexpr uint64_t kTssRsp0Offset = 4;

int cpl_of(const TimeTraveler& traveler) { return traveler.vcpu().sregs.cs.selector & 3; }

// One decoded instruction at a guest-virtual address.
struct Instruction {
  uint64_t address = 0;
  uint64_t size = 0;
  std::string text;
  bool is_branch = false;                 // jumps, calls, returns, interrupts
  std::optional<uint64_t> direct_target;  // a relative jump or call
  std::array<uint8_t, 16> bytes{};
};

class Disassembler {
 public:
  Disassembler() {
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle_) != CS_ERR_OK) std::abort();
    cs_option(handle_, CS_OPT_DETAIL, CS_OPT_ON);
  }
  ~Disassembler() { cs_close(&handle_); }
  Disassembler(const Disassembler&) = delete;
  Disassembler& operator=(const Disassembler&) = delete;

  std::optional<Instruction> at(const TimeTraveler& traveler, uint64_t address) const {
    Instruction out;
    out.address = address;
    const size_t read = traveler.address_space().read(address, out.bytes);
    cs_insn* insn = nullptr;
    if (read == 0 || cs_disasm(handle_, out.bytes.data(), read, address, 1, &insn) != 1)
      return std::nullopt;
    out.size = insn->size;
    out.text = std::string(insn->mnemonic) + " " + insn->op_str;
    const cs_detail* detail = insn->detail;
    for (uint8_t i = 0; i < detail->groups_count; ++i) {
      const uint8_t group = detail->groups[i];
      if (group == CS_GRP_JUMP || group == CS_GRP_CALL || group == CS_GRP_RET ||
          group == CS_GRP_INT || group == CS_GRP_IRET)
        out.is_branch = true;
    }
    const cs_x86& x86 = detail->x86;
    if (out.is_branch && x86.op_count == 1 && x86.operands[0].type == X86_OP_IMM)
      out.direct_target = static_cast<uint64_t>(x86.operands[0].imm);
    cs_free(insn, 1);
    return out;
  }

 private:
  csh handle_ = 0;
};

bool is_iretq(const Instruction& insn) {
  return (insn.bytes[0] & 0xf8) == 0x48 && insn.bytes[1] == 0xcf;
}
bool is_ud2(const Instruction& insn) { return insn.bytes[0] == 0x0f && insn.bytes[1] == 0x0b; }

// The frame an event from CPL3 pushed at the top of the kernel stack
// (TSS.RSP0, no IST in the test kernel): RIP, CS, RFLAGS, RSP, SS.
struct UserFrame {
  uint64_t rip = 0, cs = 0, rflags = 0, rsp = 0, ss = 0;
};
std::optional<UserFrame> user_frame_on_kernel_stack(const TimeTraveler& traveler) {
  const auto space = traveler.address_space();
  const auto rsp0 = space.read_obj<uint64_t>(traveler.vcpu().sregs.tr.base + kTssRsp0Offset);
  if (!rsp0) return std::nullopt;
  return space.read_obj<UserFrame>((*rsp0 & ~uint64_t{15}) - sizeof(UserFrame));
}

// General registers other than rip, rsp and rflags.
bool same_data_registers(const kvm_regs& a, const kvm_regs& b) {
  kvm_regs x = a, y = b;
  x.rip = y.rip = x.rsp = y.rsp = x.rflags = y.rflags = 0;
  return std::memcmp(&x, &y, sizeof x) == 0;
}

// What the step checks found, for the test's own sanity checks.
struct StepChecks {
  int returns_to_user = 0;
  int system_calls = 0;
  int user_successors = 0;
};

// One step with every check that applies to the instruction it executes.
void step_and_check(TimeTraveler& traveler, const Disassembler& disassembler, StepChecks& checks) {
  const librr::Position before = traveler.position();
  const kvm_regs regs = traveler.vcpu().regs;
  const int cpl = cpl_of(traveler);
  const auto insn = disassembler.at(traveler, regs.rip);
  ASSERT_TRUE(insn) << "no instruction at " << std::hex << regs.rip << " at " << before.to_string();
  std::optional<UserFrame> popped;
  if (cpl == 0 && is_iretq(*insn)) popped = traveler.address_space().read_obj<UserFrame>(regs.rsp);

  const StopReason::Kind kind = traveler.step_instruction().kind;
  if (kind == StopReason::Kind::kEnd) return;
  ASSERT_EQ(kind, StopReason::Kind::kStep) << before.to_string();
  const librr::Position after = traveler.position();
  if (after.steps != before.steps + 1) return;  // reached a logged position: installed, not stepped
  const kvm_regs& now = traveler.vcpu().regs;
  const std::string where = fmt::format("step {} -> {}: {:#x} {}", before.to_string(),
                                        after.to_string(), regs.rip, insn->text);

  if (popped && (popped->cs & 3) == 3) {
    // Exactly the iretq: at the user instruction it returns to, nothing run there.
    ++checks.returns_to_user;
    EXPECT_EQ(cpl_of(traveler), 3) << where;
    EXPECT_EQ(now.rip, popped->rip) << where;
    EXPECT_EQ(now.rsp, popped->rsp) << where;
    EXPECT_EQ(now.rflags & ~kTrapFlag, popped->rflags & ~kTrapFlag) << where;
    EXPECT_TRUE(same_data_registers(regs, now)) << where;
  }
  if (cpl == 3 && is_ud2(*insn)) {
    // A system call: the #UD frame holds the caller's flags, without the
    // trap flag the step set.
    ++checks.system_calls;
    EXPECT_EQ(cpl_of(traveler), 0) << where;
    const auto frame = user_frame_on_kernel_stack(traveler);
    ASSERT_TRUE(frame) << where;
    EXPECT_EQ(frame->rip, regs.rip) << where;
    EXPECT_EQ(frame->rflags & kTrapFlag, regs.rflags & kTrapFlag) << where;
  }
  if (cpl == 3 && cpl_of(traveler) == 3) {
    // One user instruction: at its fall-through or its branch target.
    ++checks.user_successors;
    const bool fall_through = now.rip == regs.rip + insn->size;
    const bool rep_iteration =
        now.rip == regs.rip && (insn->bytes[0] == 0xf3 || insn->bytes[0] == 0xf2);
    if (!insn->is_branch) {
      EXPECT_TRUE(fall_through || rep_iteration) << where << " went to " << std::hex << now.rip;
    } else if (insn->direct_target) {
      EXPECT_TRUE(fall_through || now.rip == *insn->direct_target)
          << where << " went to " << std::hex << now.rip;
    }
  }
}

uint64_t symbol_address(const std::string& guest, const std::string& name) {
  analyzer::ElfFile elf(guest_elf(guest));
  const auto symbol = elf.find_symbol(name);
  EXPECT_TRUE(symbol) << name << " is not in " << guest_elf(guest);
  return symbol ? symbol->address : 0;
}

// Stepping the hello guest through system calls and returns to user mode:
// each step is one instruction, and the replay goes on from the stepped
// machine to the end with every digest and interrupt check passing (a trap
// flag left in a kernel frame would make the guest take a #DB instead).
TEST(TravelSteps, SystemCallsAndReturnsToUserAreSingleStepsThatLeaveNoTrace) {
  SKIP_WITHOUT_KVM();
  if (!fs::exists(guest_elf("hello"))) GTEST_SKIP() << "test guests not built";
  const fs::path rec = Recordings::get().of("hello", "--guest hello");
  TimeTraveler traveler(rec, {});
  const librr::Position end = traveler.end();
  traveler.seek({end.landmark / 3, 0, 0});
  Disassembler disassembler;
  StepChecks checks;
  for (int i = 0; i < 6000 && traveler.position() < end; ++i) {
    step_and_check(traveler, disassembler, checks);
    if (HasFatalFailure()) return;
  }
  std::printf("[ info ] %d returns to user, %d system calls, %d user steps checked\n",
              checks.returns_to_user, checks.system_calls, checks.user_successors);
  EXPECT_GT(checks.returns_to_user, 0) << "no iretq to user mode stepped: the test needs another "
                                          "stretch of the recording";
  EXPECT_GT(checks.system_calls, 0);
  EXPECT_GT(checks.user_successors, 10);

  // The stepped machine replays on to the end exactly like a fresh replay.
  const librr::Position stepped_to = traveler.position();
  traveler.seek(end);
  TimeTraveler fresh(rec, {});
  fresh.seek(end);
  EXPECT_EQ(std::memcmp(&traveler.vcpu().regs, &fresh.vcpu().regs, sizeof(kvm_regs)), 0)
      << "after stepping to " << stepped_to.to_string();
}

// spin3's xorshift loop (12 instructions, the iteration count in a
// register) stepped at CPL3: the count of user instructions the guest
// executed, read back from its own registers, grows by exactly one per step.
TEST(TravelSteps, EveryStepInANativeLoopIsOneInstruction) {
  SKIP_WITHOUT_KVM();
  if (!fs::exists(guest_elf("spin3"))) GTEST_SKIP() << "test guests not built";
  const fs::path rec = spin3_recording();
  const uint64_t loop_function = symbol_address("spin3", "register_loop");
  TimeTraveler traveler(rec, {});
  Disassembler disassembler;

  // The loop body: from the target of the backward jne to the jne (read
  // once user code is mapped).
  std::vector<Instruction> body;
  uint64_t counter_step_index = 0;
  const auto find_loop_body = [&] {
    std::vector<Instruction> function;
    for (uint64_t at = loop_function; function.size() < 64;) {
      const auto insn = disassembler.at(traveler, at);
      if (!insn) break;
      function.push_back(*insn);
      if (insn->text.rfind("ret", 0) == 0) break;
      at += insn->size;
    }
    for (const Instruction& insn : function)
      if (insn.text.rfind("jne", 0) == 0 && insn.direct_target &&
          *insn.direct_target < insn.address)
        for (const Instruction& candidate : function)
          if (candidate.address >= *insn.direct_target && candidate.address <= insn.address)
            body.push_back(candidate);
    for (size_t i = 0; i < body.size(); ++i)
      if (body[i].text == "add rsi, 1") counter_step_index = i;
  };
  const auto index_in_body = [&](uint64_t rip) -> std::optional<uint64_t> {
    for (size_t i = 0; i < body.size(); ++i)
      if (body[i].address == rip) return i;
    return std::nullopt;
  };
  // Instructions executed since the loop started, from the guest's own state.
  const auto executed = [&](const kvm_regs& regs) -> std::optional<uint64_t> {
    const auto index = index_in_body(regs.rip);
    if (!index) return std::nullopt;
    const uint64_t done_iterations = regs.rsi - (*index > counter_step_index ? 1 : 0);
    return done_iterations * body.size() + *index;
  };

  // From a CPL3 async stop, through the kernel's interrupt handling (and
  // perhaps a task switch), into the loop of an xorshift task.
  std::optional<librr::Position> in_loop;
  librr::LogReader reader(librr::RecordingDir::open(rec).log_path());
  while (!in_loop) {
    auto event = reader.next();
    if (!event) break;
    const auto* async = std::get_if<librr::AsyncPosition>(&*event);
    if (!async || !stops_in_user_mode(*async)) continue;
    traveler.seek(async->pos);
    if (body.empty()) {
      find_loop_body();
      ASSERT_GE(body.size(), 10u) << "register_loop's loop not found";
      ASSERT_EQ(body[counter_step_index].text, "add rsi, 1") << "the loop counts in rsi";
    }
    // The interrupt handler's PIC accesses are landmarks: step across them.
    for (int i = 0; i < 20000; ++i) {
      if (traveler.step_instruction().kind != StopReason::Kind::kStep) break;
      if (cpl_of(traveler) == 3 && executed(traveler.vcpu().regs)) {
        in_loop = traveler.position();
        break;
      }
    }
  }
  ASSERT_TRUE(in_loop) << "no CPL3 async stop of spin3 leads back into register_loop";

  uint64_t previous = *executed(traveler.vcpu().regs);
  int steps = 0;
  for (; steps < 600; ++steps) {
    const librr::Position before = traveler.position();
    ASSERT_EQ(traveler.step_instruction().kind, StopReason::Kind::kStep);
    if (traveler.position().steps != before.steps + 1) break;  // the next async stop: installed
    ASSERT_EQ(cpl_of(traveler), 3) << traveler.position().to_string();
    const auto now = executed(traveler.vcpu().regs);
    ASSERT_TRUE(now) << "left the loop at " << traveler.position().to_string();
    ASSERT_EQ(*now, previous + 1) << "the step after " << before.to_string() << " ran "
                                  << (*now - previous) << " instructions";
    previous = *now;
  }
  std::printf("[ info ] %d steps in the loop from %s, one instruction each\n", steps,
              in_loop->to_string().c_str());
  EXPECT_GE(steps, 100) << "the next async stop came too early to say much";
}

}  // namespace
