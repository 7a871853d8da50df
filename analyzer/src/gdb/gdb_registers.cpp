#include "gdb/gdb_registers.h"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <string_view>

namespace analyzer::gdb {
namespace {

struct RegisterInfo {
  const char* name;
  int bits;
  const char* type;
  const char* group;  // "" for gdb's default
};

constexpr std::array<const char*, 16> kGeneralNames = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi",
                                                       "rbp", "rsp", "r8",  "r9",  "r10", "r11",
                                                       "r12", "r13", "r14", "r15"};
constexpr std::array<const char*, 6> kSegmentNames = {"cs", "ss", "ds", "es", "fs", "gs"};
constexpr std::array<const char*, 8> kX87ControlNames = {"fctrl", "fstat", "ftag",  "fiseg",
                                                         "fioff", "foseg", "fooff", "fop"};
constexpr std::array<const char*, 6> kSystemNames = {"cr0", "cr2", "cr3", "cr4", "cr8", "efer"};

// Register numbers of the groups above.
constexpr int kRip = 16, kEflags = 17, kFirstSegment = 18, kFirstSt = 24, kFirstX87Control = 32,
              kFirstXmm = 40, kMxcsr = 56, kFsBase = 57, kGsBase = 58, kFirstSystem = 59;
static_assert(kFirstSystem + static_cast<int>(kSystemNames.size()) == kRegisterCount);

std::string general_register_xml(int number) {
  const char* type = number == 6 || number == 7 ? "data_ptr" : "int64";
  return fmt::format("    <reg name=\"{}\" bitsize=\"64\" type=\"{}\" regnum=\"{}\"/>\n",
                     kGeneralNames[number], type, number);
}

std::string reg_xml(std::string_view name, int bits, std::string_view type, int number,
                    std::string_view group = {}) {
  std::string group_attribute = group.empty() ? "" : fmt::format(" group=\"{}\"", group);
  return fmt::format("    <reg name=\"{}\" bitsize=\"{}\" type=\"{}\" regnum=\"{}\"{}/>\n", name,
                     bits, type, number, group_attribute);
}

// gdb only knows the registers it is told of; the types below are the ones
// its x86 code and its tdesc predefined types understand.
std::string build_target_description() {
  std::string xml =
      "<?xml version=\"1.0\"?>\n"
      "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
      "<target version=\"1.0\">\n"
      "  <architecture>i386:x86-64</architecture>\n"
      "  <feature name=\"org.gnu.gdb.i386.core\">\n"
      "    <flags id=\"rrkvm_eflags\" size=\"4\">\n";
  constexpr std::array<std::pair<const char*, int>, 16> kEflagsBits = {{{"CF", 0},
                                                                        {"PF", 2},
                                                                        {"AF", 4},
                                                                        {"ZF", 6},
                                                                        {"SF", 7},
                                                                        {"TF", 8},
                                                                        {"IF", 9},
                                                                        {"DF", 10},
                                                                        {"OF", 11},
                                                                        {"NT", 14},
                                                                        {"RF", 16},
                                                                        {"VM", 17},
                                                                        {"AC", 18},
                                                                        {"VIF", 19},
                                                                        {"VIP", 20},
                                                                        {"ID", 21}}};
  for (const auto& [name, bit] : kEflagsBits)
    xml += fmt::format("      <field name=\"{}\" start=\"{}\" end=\"{}\"/>\n", name, bit, bit);
  xml += "    </flags>\n";
  for (int i = 0; i < 16; ++i) xml += general_register_xml(i);
  xml += reg_xml("rip", 64, "code_ptr", kRip);
  xml += reg_xml("eflags", 32, "rrkvm_eflags", kEflags);
  for (int i = 0; i < 6; ++i) xml += reg_xml(kSegmentNames[i], 32, "int32", kFirstSegment + i);
  for (int i = 0; i < 8; ++i) xml += reg_xml(fmt::format("st{}", i), 80, "i387_ext", kFirstSt + i);
  for (int i = 0; i < 8; ++i)
    xml += reg_xml(kX87ControlNames[i], 32, "int", kFirstX87Control + i, "float");
  xml +=
      "  </feature>\n"
      "  <feature name=\"org.gnu.gdb.i386.sse\">\n"
      "    <vector id=\"rrkvm_v4f\" type=\"ieee_single\" count=\"4\"/>\n"
      "    <vector id=\"rrkvm_v2d\" type=\"ieee_double\" count=\"2\"/>\n"
      "    <vector id=\"rrkvm_v16i8\" type=\"int8\" count=\"16\"/>\n"
      "    <vector id=\"rrkvm_v8i16\" type=\"int16\" count=\"8\"/>\n"
      "    <vector id=\"rrkvm_v4i32\" type=\"int32\" count=\"4\"/>\n"
      "    <vector id=\"rrkvm_v2i64\" type=\"int64\" count=\"2\"/>\n"
      "    <union id=\"vec128\">\n"
      "      <field name=\"v4_float\" type=\"rrkvm_v4f\"/>\n"
      "      <field name=\"v2_double\" type=\"rrkvm_v2d\"/>\n"
      "      <field name=\"v16_int8\" type=\"rrkvm_v16i8\"/>\n"
      "      <field name=\"v8_int16\" type=\"rrkvm_v8i16\"/>\n"
      "      <field name=\"v4_int32\" type=\"rrkvm_v4i32\"/>\n"
      "      <field name=\"v2_int64\" type=\"rrkvm_v2i64\"/>\n"
      "      <field name=\"uint128\" type=\"uint128\"/>\n"
      "    </union>\n";
  for (int i = 0; i < 16; ++i)
    xml += reg_xml(fmt::format("xmm{}", i), 128, "vec128", kFirstXmm + i, "vector");
  xml += reg_xml("mxcsr", 32, "int", kMxcsr, "vector");
  xml +=
      "  </feature>\n"
      "  <feature name=\"org.gnu.gdb.i386.segments\">\n";
  xml += reg_xml("fs_base", 64, "int", kFsBase);
  xml += reg_xml("gs_base", 64, "int", kGsBase);
  xml +=
      "  </feature>\n"
      "  <feature name=\"org.rrkvm.x86.system\">\n";
  for (int i = 0; i < static_cast<int>(kSystemNames.size()); ++i)
    xml += reg_xml(kSystemNames[i], 64, "int64", kFirstSystem + i, "system");
  xml +=
      "  </feature>\n"
      "</target>\n";
  return xml;
}

template <class T>
std::vector<uint8_t> little_endian(T value, size_t size = sizeof(T)) {
  std::vector<uint8_t> out(size, 0);
  std::memcpy(out.data(), &value, std::min(size, sizeof value));
  return out;
}

uint64_t general_register(const kvm_regs& r, int number) {
  const std::array<uint64_t, 16> values = {r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp,
                                           r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15};
  return values[static_cast<size_t>(number)];
}

uint16_t segment_selector(const kvm_sregs& s, int index) {
  const std::array<const kvm_segment*, 6> segments = {&s.cs, &s.ss, &s.ds, &s.es, &s.fs, &s.gs};
  return segments[static_cast<size_t>(index)]->selector;
}

// Classifies a non-empty x87 register for the full tag word: 0 valid,
// 1 zero, 2 special (NaN, infinity, denormal, unsupported).
uint16_t x87_register_tag(const uint8_t* value) {
  uint64_t mantissa;
  uint16_t sign_exponent;
  std::memcpy(&mantissa, value, 8);
  std::memcpy(&sign_exponent, value + 8, 2);
  const uint16_t exponent = sign_exponent & 0x7fff;
  const bool integer_bit = (mantissa >> 63) != 0;
  if (exponent == 0x7fff) return 2;
  if (exponent == 0) return mantissa == 0 ? 1 : 2;
  return integer_bit ? 0 : 2;
}

uint64_t x87_control_register(const kvm_fpu& fpu, int index) {
  // In 64-bit mode the FPU instruction and data pointers are 64 bit; gdb
  // keeps the upper halves in fiseg and foseg (as it does for FXSAVE64).
  switch (index) {
    case 0:
      return fpu.fcw;
    case 1:
      return fpu.fsw;
    case 2:
      return full_x87_tag_word(fpu);
    case 3:
      return fpu.last_ip >> 32;
    case 4:
      return fpu.last_ip & 0xffffffffu;
    case 5:
      return fpu.last_dp >> 32;
    case 6:
      return fpu.last_dp & 0xffffffffu;
    default:
      return fpu.last_opcode & 0x7ffu;
  }
}

}  // namespace

const std::string& target_description() {
  static const std::string xml = build_target_description();
  return xml;
}

uint16_t full_x87_tag_word(const kvm_fpu& fpu) {
  const int top = (fpu.fsw >> 11) & 7;
  uint16_t tags = 0;
  for (int physical = 0; physical < 8; ++physical) {
    uint16_t tag = 3;  // empty
    if (fpu.ftwx & (1u << physical)) {
      // fpr[] is in stack order: ST(i) is physical register (top + i) mod 8.
      const int stack_index = (physical - top + 8) & 7;
      tag = x87_register_tag(fpu.fpr[stack_index]);
    }
    tags = static_cast<uint16_t>(tags | tag << (2 * physical));
  }
  return tags;
}

std::optional<std::vector<uint8_t>> register_bytes(const MachineRegisters& machine, int number) {
  const kvm_regs& r = machine.regs;
  const kvm_sregs& s = machine.sregs;
  const kvm_fpu& f = machine.fpu;
  if (number < 0 || number >= kRegisterCount) return std::nullopt;
  if (number < 16) return little_endian(general_register(r, number));
  if (number == kRip) return little_endian(r.rip);
  if (number == kEflags) return little_endian(static_cast<uint32_t>(r.rflags));
  if (number < kFirstSt)
    return little_endian(static_cast<uint32_t>(segment_selector(s, number - kFirstSegment)));
  if (number < kFirstX87Control) {
    const uint8_t* value = f.fpr[number - kFirstSt];
    return std::vector<uint8_t>(value, value + 10);
  }
  if (number < kFirstXmm)
    return little_endian(static_cast<uint32_t>(x87_control_register(f, number - kFirstX87Control)));
  if (number < kMxcsr) {
    const uint8_t* value = f.xmm[number - kFirstXmm];
    return std::vector<uint8_t>(value, value + 16);
  }
  if (number == kMxcsr) return little_endian(f.mxcsr);
  if (number == kFsBase) return little_endian(s.fs.base);
  if (number == kGsBase) return little_endian(s.gs.base);
  const std::array<uint64_t, 6> system = {s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer};
  return little_endian(system[static_cast<size_t>(number - kFirstSystem)]);
}

std::vector<uint8_t> all_register_bytes(const MachineRegisters& machine) {
  std::vector<uint8_t> out;
  for (int number = 0; number < kRegisterCount; ++number) {
    const auto bytes = register_bytes(machine, number);
    out.insert(out.end(), bytes->begin(), bytes->end());
  }
  return out;
}

}  // namespace analyzer::gdb
