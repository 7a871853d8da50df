// rr-gateway against `tcpdump -w` on the same traffic: UDP frames from an
// "outside" namespace routed through a gateway namespace into a LAN namespace,
// both tools capturing the gateway's LAN port (lan0). For each offered rate we
// report frames written, kernel drops, and CPU time per million frames.
// Needs root (network namespaces). Usage: bench_gateway_capture [frames per run]
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <thread>

#include "../tests/gateway/netns_topology.h"
#include "../tests/gateway/pcapng_reader.h"
#include "frame_index.h"

using namespace gateway_test;
using Clock = std::chrono::steady_clock;

namespace {

// A process started inside a namespace with stderr to a file.
struct Spawned {
  pid_t pid = -1;
  Spawned(const Topology& net, const std::vector<std::string>& argv,
          const std::filesystem::path& stderr_file) {
    std::string netns = "/run/netns/" + net.ns("gw");
    pid = fork();
    if (pid == 0) {
      int fd = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int ns = open(netns.c_str(), O_RDONLY);
      if (fd < 0 || ns < 0 || setns(ns, CLONE_NEWNET) != 0) _exit(120);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(121);
    }
  }
  // user+system CPU seconds so far, from /proc/PID/stat.
  double cpu_seconds() const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), {});
    auto after = stat.substr(stat.rfind(')') + 2);
    std::istringstream fields(after);
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {
      if (i == 14) utime = std::stoul(field);
      if (i == 15) {
        stime = std::stoul(field);
        break;
      }
    }
    return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
  }
  int stop() {
    kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid, &status, WNOHANG) == pid) return status;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
  }
};

// Sends `count` 64-byte-payload datagrams at about `rate` frames/s (0 = as fast as possible).
double send_traffic(const Topology& net, uint64_t count, uint64_t rate) {
  auto socket = net.socket_in("out", AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(9100);
  inet_pton(AF_INET, Topology::kLan1Address, &to.sin_addr);
  constexpr int kBatch = 32;
  std::vector<std::array<char, 64>> payloads(kBatch);
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> messages(kBatch);
  auto start = Clock::now();
  for (uint64_t sent = 0; sent < count;) {
    int n = static_cast<int>(std::min<uint64_t>(kBatch, count - sent));
    for (int i = 0; i < n; ++i) {
      std::snprintf(payloads[i].data(), payloads[i].size(),
                    "rrgw-bench:%llu:", static_cast<unsigned long long>(sent + i));
      iov[i] = {payloads[i].data(), payloads[i].size()};
      messages[i] = {};
      messages[i].msg_hdr.msg_name = &to;
      messages[i].msg_hdr.msg_namelen = sizeof to;
      messages[i].msg_hdr.msg_iov = &iov[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    int done = sendmmsg(socket.get(), messages.data(), n, 0);
    if (done <= 0) continue;
    sent += static_cast<uint64_t>(done);
    if (rate) {
      auto due = start + std::chrono::nanoseconds(sent * 1'000'000'000ull / rate);
      std::this_thread::sleep_until(due);
    }
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Result {
  uint64_t written = 0, drops = 0;
  uint64_t on_wire = 0;  // frames the gateway transmitted on lan0 during the run
  double cpu = 0, seconds = 0;
};

// Frames transmitted on the gateway's lan0 so far (the kernel may drop forwarded
// frames before that under load: those never reach the LAN and cannot be logged).
uint64_t lan0_tx_packets(const Topology& net) {
  auto json = run_command("ip -n " + net.ns("gw") + " -s -j link show lan0");
  std::smatch m;
  if (std::regex_search(json, m, std::regex("\"tx\":\\{\"bytes\":\\d+,\"packets\":(\\d+)")))
    return std::stoull(m[1]);
  return 0;
}

Result run_gateway(const Topology& net, const std::filesystem::path& dir, uint64_t frames,
                   uint64_t rate) {
  auto out = dir / "gw";
  std::filesystem::remove_all(out);
  auto config = dir / "gw.conf";
  std::ofstream(config) << "lan_if = lan0\nlan_prefix = 10.77.0.0/24\nout = " << out.string()
                        << "\nsegment_size = 256M\n";
  // The previous run's file would satisfy the readiness check below before the
  // new gateway truncates it: traffic would start while the gateway still sets up.
  std::filesystem::remove(dir / "gw.stderr");
  Spawned gateway(net, {GatewayProcess::default_binary(), "--config", config.string()},
                  dir / "gw.stderr");
  for (int i = 0;
       i < 500 &&
       run_command("grep -c 'logging frames' " + (dir / "gw.stderr").string()).find('1') != 0;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Result r;
  double cpu_before = gateway.cpu_seconds();  // ring setup is not per-frame work
  uint64_t tx_before = lan0_tx_packets(net);
  r.seconds = send_traffic(net, frames, rate);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  r.on_wire = lan0_tx_packets(net) - tx_before;
  r.cpu = gateway.cpu_seconds() - cpu_before;
  gateway.stop();
  auto log = run_command("cat " + (dir / "gw.stderr").string());
  std::smatch m;
  if (std::regex_search(log, m, std::regex("kernel_drops=(\\d+)"))) r.drops = std::stoull(m[1]);
  if (std::regex_search(log, m, std::regex("summary: .*")))
    fmt::print(stderr, "rr-gateway {}\n", m[0].str());
  gateway::FrameIndex index(out / gateway::kIndexFileName);
  r.written = index.all_frames().size();
  return r;
}

Result run_tcpdump(const Topology& net, const std::filesystem::path& dir, uint64_t frames,
                   uint64_t rate) {
  auto file = dir / "tcpdump.pcap";
  std::filesystem::remove(file);
  // -B 65536: a 64 MiB kernel buffer, like rr-gateway's 64 x 1 MiB ring.
  std::filesystem::remove(dir / "tcpdump.stderr");  // see run_gateway
  Spawned tcpdump(net, {"tcpdump", "-i", "lan0", "-n", "-B", "65536", "-w", file.string()},
                  dir / "tcpdump.stderr");
  for (int i = 0;
       i < 500 &&
       run_command("grep -c 'listening' " + (dir / "tcpdump.stderr").string()).find('1') != 0;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Result r;
  double cpu_before = tcpdump.cpu_seconds();
  uint64_t tx_before = lan0_tx_packets(net);
  r.seconds = send_traffic(net, frames, rate);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  r.on_wire = lan0_tx_packets(net) - tx_before;
  r.cpu = tcpdump.cpu_seconds() - cpu_before;
  tcpdump.stop();
  auto log = run_command("cat " + (dir / "tcpdump.stderr").string());
  std::smatch m;
  if (std::regex_search(log, m, std::regex("(\\d+) packets captured")))
    r.written = std::stoull(m[1]);
  if (std::regex_search(log, m, std::regex("(\\d+) packets dropped by kernel")))
    r.drops = std::stoull(m[1]);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t frames = argc > 1 ? std::stoull(argv[1]) : 200'000;
  auto reason = netns_unavailable_reason();
  if (!reason.empty()) {
    fmt::print(stderr, "bench_gateway_capture: SKIPPED: {}\n", reason);
    return 0;
  }
  if (!run_quietly("command -v tcpdump")) {
    fmt::print(stderr, "bench_gateway_capture: SKIPPED: tcpdump missing\n");
    return 0;
  }
  TempDir dir;
  Topology net;
  fmt::print(
      "{} UDP frames (106 bytes on the wire) per run, captured on the gateway's LAN port\n\n",
      frames);
  fmt::print(
      "{:>10} {:>10} | {:>8} {:>10} {:>8} {:>9} {:>12} | {:>8} {:>10} {:>8} {:>9} {:>12} | {:>7}\n",
      "offered/s", "achieved/s", "gw wire", "gw frames", "gw drops", "gw CPU s", "gw CPU s/M",
      "td wire", "td frames", "td drops", "td CPU s", "td CPU s/M", "CPU gw/td");
  for (uint64_t rate : {50'000ull, 100'000ull, 200'000ull, 0ull}) {
    auto gw = run_gateway(net, dir.path(), frames, rate);
    auto td = run_tcpdump(net, dir.path(), frames, rate);
    double achieved = double(frames) / gw.seconds;
    auto per_million = [&](const Result& r) { return r.cpu / (double(frames) / 1e6); };
    fmt::print(
        "{:>10} {:>10.0f} | {:>8} {:>10} {:>8} {:>9.2f} {:>12.2f} | {:>8} {:>10} {:>8} {:>9.2f} "
        "{:>12.2f} | {:>7.2f}\n",
        rate ? std::to_string(rate) : std::string("max"), achieved, gw.on_wire, gw.written,
        gw.drops, gw.cpu, per_million(gw), td.on_wire, td.written, td.drops, td.cpu,
        per_million(td), td.cpu > 0 ? gw.cpu / td.cpu : 0.0);
  }
  fmt::print(
      "\n'wire' = frames the gateway transmitted on lan0 (entering the LAN); 'frames' = frames "
      "written (rr-gateway: rows in index.sqlite; tcpdump: 'packets "
      "captured'). CPU = user+system of the capture process while the traffic ran (setup "
      "excluded).\n");
  return 0;
}
