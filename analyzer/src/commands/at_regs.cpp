// `rr-analyze at REC POS regs`: general registers, rip, rflags, segment
// selectors, control registers and EFER.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands/at_views.h"
#include "machine/vcpu_state.h"

namespace analyzer {
namespace {

constexpr uint32_t kMsrEfer = 0xc0000080;

std::vector<std::pair<const char*, uint64_t>> general_registers(const kvm_regs& r) {
  return {{"rax", r.rax}, {"rbx", r.rbx}, {"rcx", r.rcx}, {"rdx", r.rdx},
          {"rsi", r.rsi}, {"rdi", r.rdi}, {"rbp", r.rbp}, {"rsp", r.rsp},
          {"r8", r.r8},   {"r9", r.r9},   {"r10", r.r10}, {"r11", r.r11},
          {"r12", r.r12}, {"r13", r.r13}, {"r14", r.r14}, {"r15", r.r15}};
}

std::vector<std::pair<const char*, uint16_t>> segment_selectors(const kvm_sregs& s) {
  return {{"cs", s.cs.selector}, {"ss", s.ss.selector}, {"ds", s.ds.selector},
          {"es", s.es.selector}, {"fs", s.fs.selector}, {"gs", s.gs.selector}};
}

uint64_t efer_of(const vmm::VcpuState& state) {
  for (const kvm_msr_entry& msr : state.msrs)
    if (msr.index == kMsrEfer) return msr.data;
  return state.sregs.efer;
}

// The set flags by name, as gdb prints them: "[ IF ZF ]".
std::string describe_rflags(uint64_t rflags) {
  static constexpr std::pair<int, const char*> kFlags[] = {{0, "CF"}, {2, "PF"},  {4, "AF"},
                                                           {6, "ZF"}, {7, "SF"},  {8, "TF"},
                                                           {9, "IF"}, {10, "DF"}, {11, "OF"}};
  std::string text = "[ ";
  for (const auto& [bit, name] : kFlags)
    if (rflags & (1ull << bit)) text += std::string(name) + " ";
  return text + "]";
}

}  // namespace

int show_regs(const TimeTraveler& traveler, bool json) {
  const vmm::VcpuState& state = traveler.vcpu();
  const kvm_regs& r = state.regs;
  const kvm_sregs& s = state.sregs;
  const int cpl = s.cs.selector & 3;
  if (json) {
    nlohmann::json j;
    j["position"] = traveler.here().to_string();
    for (const auto& [name, value] : general_registers(r)) j["regs"][name] = value;
    j["regs"]["rip"] = r.rip;
    j["regs"]["rflags"] = r.rflags;
    for (const auto& [name, value] : segment_selectors(s)) j["segments"][name] = value;
    j["control"] = {
        {"cr0", s.cr0}, {"cr2", s.cr2}, {"cr3", s.cr3}, {"cr4", s.cr4}, {"efer", efer_of(state)}};
    j["cpl"] = cpl;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("position {}  (CPL{})\n", traveler.here().to_string(), cpl);
  int column = 0;
  for (const auto& [name, value] : general_registers(r))
    fmt::print("{:<4}{:#018x}{}", name, value, ++column % 4 == 0 ? "\n" : "  ");
  fmt::print("rip {:#018x}  rflags {:#010x} {}\n", r.rip, r.rflags, describe_rflags(r.rflags));
  for (const auto& [name, value] : segment_selectors(s)) fmt::print("{} {:#06x}  ", name, value);
  fmt::print("\ncr0 {:#x}  cr3 {:#x}  cr4 {:#x}  efer {:#x}\n", s.cr0, s.cr3, s.cr4,
             efer_of(state));
  return 0;
}

}  // namespace analyzer
