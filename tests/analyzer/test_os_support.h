#pragma once
// Shared by the profile and OS-model tests: the real kernels they read (the
// cached Linux guest vmlinux, the test-guest ELFs), profiles generated from
// them once per test binary, and guest RAM from real recordings' snapshots.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "librr/snapshot.h"
#include "memory/physical_memory.h"
#include "profile/isf_generator.h"
#include "profile/profile.h"
#include "test_command_support.h"

namespace os_test {

namespace fs = std::filesystem;

using analyzer_test::CommandResult;
using analyzer_test::guest_elf;
using analyzer_test::kvm_usable;
using analyzer_test::rr_analyze;
using analyzer_test::run_command;

// The Linux guest's cache directory, if it was built on this machine; never builds.
inline std::optional<fs::path> linux_guest_dir() {
  const auto hash = run_command(std::string(RR_SOURCE_DIR) +
                                "/examples/linux-guest/build.sh --print-hash 2>/dev/null");
  if (hash.exit_code != 0) return std::nullopt;
  std::string digest = hash.output;
  while (!digest.empty() && (digest.back() == '\n' || digest.back() == ' ')) digest.pop_back();
  const char* cache = std::getenv("RR_CACHE_DIR");
  const char* home = std::getenv("HOME");
  const fs::path root = cache != nullptr && *cache
                            ? fs::path(cache)
                            : fs::path(home ? home : "/root") / ".cache/rrkvm";
  const fs::path dir = root / "linux-guest" / digest;
  if (!fs::exists(dir / "manifest.txt") || !fs::exists(dir / "vmlinux")) return std::nullopt;
  return dir;
}

// A test guest recorded with `rr-vmm record`, with what its console
// printed; removed with the object.
struct GuestRecording {
  fs::path dir, recording;
  std::string console;
  bool ok = false;
  std::string error;

  GuestRecording(const std::string& guest, const std::string& append) {
    char pattern[] = "/tmp/rr-guest-test-XXXXXX";
    dir = mkdtemp(pattern);
    recording = dir / guest;
    const auto result = run_command(
        "RR_GUEST_DIR=" + std::string(RR_BINARY_DIR) + "/guests " + RR_BINARY_DIR +
        "/bin/rr-vmm record --out " + recording.string() + " --serial-in none --guest " + guest +
        " --append " + append + " >" + (dir / "console.txt").string() + " </dev/null");
    std::ifstream in(dir / "console.txt", std::ios::binary);
    console.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    ok = result.exit_code == 0;
    error = result.output;
  }
  ~GuestRecording() { fs::remove_all(dir); }
  GuestRecording(const GuestRecording&) = delete;
  GuestRecording& operator=(const GuestRecording&) = delete;
};

// The real Linux guest recorded booting (minutes under load), with what its
// console printed. ctest runs each slow TEST in a process of its own, so
// each test that needs the boot records it once. `skip` says why the guest
// is missing here, `error` why recording failed.
struct LinuxBootRecording {
  fs::path dir, recording, guest;
  std::string console;
  std::string skip, error;

  LinuxBootRecording() {
    const auto guest_dir = linux_guest_dir();
    if (!guest_dir) {
      skip = "the Linux guest is not built here (examples/linux-guest/build.sh)";
      return;
    }
    guest = *guest_dir;
    char pattern[] = "/tmp/rr-linux-boot-XXXXXX";
    dir = mkdtemp(pattern);
    recording = dir / "linux";
    const auto result =
        run_command("RR_LINUX_GUEST_DIR=" + guest.string() + " " + RR_BINARY_DIR +
                    "/bin/rr-vmm record --linux --out " + recording.string() +
                    " --serial-in none >" + (dir / "console.txt").string() + " </dev/null");
    if (result.exit_code != 0) error = "rr-vmm record --linux failed: " + result.output;
    std::ifstream in(dir / "console.txt", std::ios::binary);
    console.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ~LinuxBootRecording() {
    if (!dir.empty()) fs::remove_all(dir);
  }
  LinuxBootRecording(const LinuxBootRecording&) = delete;
  LinuxBootRecording& operator=(const LinuxBootRecording&) = delete;
};

// The lines of console or kernel-log text, without the "\r" the 8250
// console driver writes before each "\n" (the kernel log holds "\n" only).
inline std::vector<std::string> console_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  for (char c : text) {
    if (c == '\r') continue;
    if (c == '\n') {
      lines.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

// Profiles generated once per test binary (the vmlinux one takes seconds).
inline const analyzer::Profile& profile_of(const fs::path& elf) {
  static std::map<fs::path, analyzer::Profile> profiles;
  auto it = profiles.find(elf);
  if (it == profiles.end())
    it = profiles
             .emplace(elf, analyzer::Profile::from_json(analyzer::generate_isf(elf), elf.string()))
             .first;
  return it->second;
}

// Guest RAM of a snapshot file (the "ram" section), held in memory.
class SnapshotRam {
 public:
  explicit SnapshotRam(const fs::path& snapshot) {
    const auto reader = librr::SnapshotReader::open(snapshot);
    const librr::SectionInfo* ram = reader.find("ram");
    if (ram == nullptr) throw std::runtime_error(snapshot.string() + " has no ram section");
    bytes_.resize(ram->size);
    reader.read_memory("ram", bytes_.data(), bytes_.size());
    memory_ = std::make_unique<analyzer::BufferPhysicalMemory>(bytes_);
  }
  const analyzer::PhysicalMemory& memory() const { return *memory_; }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  std::unique_ptr<analyzer::BufferPhysicalMemory> memory_;
};

}  // namespace os_test
