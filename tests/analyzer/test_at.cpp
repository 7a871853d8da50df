// `rr-analyze at` through the real binary on real recordings: registers,
// memory and disassembly agree with the guest image; exit codes and messages
// for bad positions, positions past the end and damaged logs.
#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "librr/log_index.h"
#include "librr/recording.h"
#include "test_travel_support.h"

namespace {

using namespace travel_test;

// The bytes of the guest image at virtual address `address` (its PT_LOAD
// segments), read with libelf.
std::vector<uint8_t> image_bytes(const fs::path& elf_path, uint64_t address, size_t length) {
  elf_version(EV_CURRENT);
  const int fd = open(elf_path.c_str(), O_RDONLY);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  std::vector<uint8_t> bytes;
  size_t count = 0;
  elf_getphdrnum(elf, &count);
  for (size_t i = 0; i < count; ++i) {
    GElf_Phdr segment;
    gelf_getphdr(elf, static_cast<int>(i), &segment);
    if (segment.p_type != PT_LOAD || address < segment.p_vaddr ||
        address + length > segment.p_vaddr + segment.p_filesz)
      continue;
    std::ifstream in(elf_path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(segment.p_offset + (address - segment.p_vaddr)));
    bytes.resize(length);
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(length));
  }
  elf_end(elf);
  close(fd);
  return bytes;
}

// The physical load address and first bytes of the image's executable segment.
std::pair<uint64_t, std::vector<uint8_t>> code_segment_start(const fs::path& elf_path,
                                                             size_t length) {
  elf_version(EV_CURRENT);
  const int fd = open(elf_path.c_str(), O_RDONLY);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  std::pair<uint64_t, std::vector<uint8_t>> result;
  size_t count = 0;
  elf_getphdrnum(elf, &count);
  for (size_t i = 0; i < count; ++i) {
    GElf_Phdr segment;
    gelf_getphdr(elf, static_cast<int>(i), &segment);
    if (segment.p_type != PT_LOAD || !(segment.p_flags & PF_X) || segment.p_filesz < length)
      continue;
    std::ifstream in(elf_path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(segment.p_offset));
    result.first = segment.p_paddr;
    result.second.resize(length);
    in.read(reinterpret_cast<char*>(result.second.data()), static_cast<std::streamsize>(length));
    break;
  }
  elf_end(elf);
  close(fd);
  return result;
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

nlohmann::json json_of(const CommandResult& result) {
  const size_t start = result.output.find('{');
  EXPECT_NE(start, std::string::npos) << result.output;
  return nlohmann::json::parse(result.output.substr(start == std::string::npos ? 0 : start));
}

TEST(At, RegsMemAndDisasmShowTheGuestImagesInstructionAtRip) {
  SKIP_WITHOUT_KVM();
  const std::string rec = ticks_recording().string();
  const CommandResult regs = rr_analyze("at " + rec + " L20 regs --json");
  ASSERT_EQ(regs.exit_code, 0) << regs.output;
  const nlohmann::json r = json_of(regs);
  EXPECT_EQ(r["position"], "L20");
  const uint64_t rip = r["regs"]["rip"];
  EXPECT_EQ(r["cpl"], 0);
  EXPECT_NE(r["control"]["cr3"].get<uint64_t>(), 0u);
  EXPECT_TRUE(r["control"]["efer"].get<uint64_t>() & (1u << 10)) << "long mode active";

  const std::vector<uint8_t> expected = image_bytes(guest_elf("ticks"), rip, 16);
  ASSERT_EQ(expected.size(), 16u) << "rip " << rip << " is not in the guest image";
  const CommandResult mem = rr_analyze(fmt::format("at {} L20 mem {:#x} 16 --json", rec, rip));
  ASSERT_EQ(mem.exit_code, 0) << mem.output;
  EXPECT_EQ(from_hex(json_of(mem)["bytes"]), expected);

  const CommandResult disasm = rr_analyze(
      fmt::format("at {} L20 disasm --json --symbols {}", rec, guest_elf("ticks").string()));
  ASSERT_EQ(disasm.exit_code, 0) << disasm.output;
  const nlohmann::json first = json_of(disasm)["instructions"][0];
  EXPECT_EQ(first["address"].get<uint64_t>(), rip);
  const std::vector<uint8_t> insn = from_hex(first["bytes"]);
  ASSERT_FALSE(insn.empty());
  EXPECT_TRUE(std::equal(insn.begin(), insn.end(), expected.begin()));
  EXPECT_TRUE(first.contains("symbol")) << first.dump();

  const CommandResult text = rr_analyze("at " + rec + " L20 disasm");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.output.find("=> "), std::string::npos) << text.output;
}

TEST(At, PhysicalMemoryMatchesTheImageAtItsLoadAddress) {
  SKIP_WITHOUT_KVM();
  const std::string rec = ticks_recording().string();
  const auto [address, expected] = code_segment_start(guest_elf("ticks"), 32);
  ASSERT_EQ(expected.size(), 32u) << "no executable segment in the guest image";
  const CommandResult mem =
      rr_analyze(fmt::format("at {} L30 mem {:#x} 32 --phys --json", rec, address));
  ASSERT_EQ(mem.exit_code, 0) << mem.output;
  EXPECT_EQ(from_hex(json_of(mem)["bytes"]), expected);
  const CommandResult outside = rr_analyze("at " + rec + " L30 mem 0xfffffffff000 16 --phys");
  EXPECT_EQ(outside.exit_code, 1) << outside.output;
}

TEST(At, PastTheEndIsAUsageErrorThatSaysWhereTheRecordingEnds) {
  SKIP_WITHOUT_KVM();
  const std::string rec = ticks_recording().string();
  const CommandResult end = rr_analyze("at " + rec + " end regs --json");
  ASSERT_EQ(end.exit_code, 0) << end.output;
  const std::string last = json_of(end)["position"];
  const CommandResult past = rr_analyze("at " + rec + " L99999999 regs");
  EXPECT_EQ(past.exit_code, 2);
  EXPECT_NE(past.output.find("ends at " + last), std::string::npos) << past.output;
}

TEST(At, BadPositionSyntaxIsAUsageError) {
  SKIP_WITHOUT_KVM();
  const CommandResult bad = rr_analyze("at " + ticks_recording().string() + " L12+x regs");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("irq:17"), std::string::npos) << "the accepted forms are listed";
}

TEST(At, ADamagedLogChunkIsNamed) {
  SKIP_WITHOUT_KVM();
  const fs::path source = ticks_recording();
  const fs::path damaged = Recordings::get().dir() / "damaged";
  fs::remove_all(damaged);
  fs::copy(source, damaged, fs::copy_options::recursive);
  const fs::path log = librr::RecordingDir::open(damaged).log_path();
  fs::remove(librr::index_path_for(log));
  {
    std::fstream file(log, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(0, std::ios::end);
    const auto size = static_cast<std::streamoff>(file.tellg());
    file.seekp(size / 2);
    char byte = 0;
    file.seekg(size / 2);
    file.get(byte);
    file.seekp(size / 2);
    file.put(static_cast<char>(byte ^ 0x5a));
  }
  const CommandResult result = rr_analyze("at " + damaged.string() + " L5 regs");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("chunk"), std::string::npos) << result.output;
}

}  // namespace
