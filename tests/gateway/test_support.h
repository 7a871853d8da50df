#pragma once
// Small helpers shared by the gateway tests: temporary directories, tmpfs
// mounts, running commands.
#include <sys/mount.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace gateway_test {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "rrgw-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A size-limited tmpfs mounted on a fresh directory (to provoke ENOSPC).
class SmallTmpfs {
 public:
  explicit SmallTmpfs(size_t bytes) {
    std::string options = "size=" + std::to_string(bytes);
    mounted_ = ::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::filesystem::path& path() const { return dir_.path(); }

 private:
  TempDir dir_;
  bool mounted_ = false;
};

// Runs a shell command and returns its standard output.
inline std::string run_command(const std::string& command, int* status = nullptr) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    output.append(buffer.data(), n);
  int rc = ::pclose(pipe);
  if (status) *status = rc;
  return output;
}

// An Ethernet frame carrying IPv4/UDP between the given addresses, padded with
// `payload` (not a valid checksum: the gateway does not check them).
inline std::vector<uint8_t> ipv4_udp_frame(std::array<uint8_t, 4> source,
                                           std::array<uint8_t, 4> destination,
                                           const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00};
  uint16_t total = static_cast<uint16_t>(20 + 8 + payload.size());
  std::vector<uint8_t> ip = {0x45, 0, uint8_t(total >> 8), uint8_t(total), 0, 0, 0, 0, 64, 17,
                             0,    0};
  ip.insert(ip.end(), source.begin(), source.end());
  ip.insert(ip.end(), destination.begin(), destination.end());
  f.insert(f.end(), ip.begin(), ip.end());
  uint16_t udp_length = static_cast<uint16_t>(8 + payload.size());
  std::vector<uint8_t> udp = {0x30, 0x39, 0x27, 0x0f, uint8_t(udp_length >> 8), uint8_t(udp_length),
                              0,    0};
  f.insert(f.end(), udp.begin(), udp.end());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

}  // namespace gateway_test
