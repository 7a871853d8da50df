// Log size with and without cooperative logging, in the same run: the
// scenario of the acceptance test (tests/gateway/coop_scenario.h) — two `net`
// guests recorded behind the gateway, a conversation between them and UDP
// traffic from outside — recorded once plainly and once cooperatively, with
// the same traffic. Reports each recording's log on disk, the bytes of its
// received-frame records, and the gateway's log.
// Needs root, /dev/kvm, /dev/net/tun, bin/rr-vmm, guests/net.elf, bin/rr-gateway.
// Usage: bench_gateway_coop_logsize [greetings] [outside frames per guest] [payload bytes]
#include <fmt/format.h>

#include <cstdio>

#include "../tests/gateway/coop_scenario.h"

using namespace gateway_test;

namespace {

struct Sizes {
  uint64_t log_a = 0, log_b = 0;
  uint64_t frame_bytes = 0;  // data of net0* records in both logs
  uint64_t full = 0, references = 0, flagged = 0;
  uint64_t gateway = 0;  // segments and index
  bool ok = false;
};

uint64_t file_bytes(const fs::path& path) { return fs::exists(path) ? fs::file_size(path) : 0; }

uint64_t directory_bytes(const fs::path& path) {
  uint64_t total = 0;
  if (fs::exists(path))
    for (const auto& entry : fs::directory_iterator(path))
      if (entry.is_regular_file()) total += entry.file_size();
  return total;
}

Sizes run(bool cooperative, int greetings, int outside_per_guest, size_t payload_bytes) {
  Sizes sizes;
  TempDir dir;
  Topology net(9000);
  attach_guest_lan(net, "lan1", 2);
  attach_guest_lan(net, "lan2", 3);
  const ScenarioFiles files = write_scenario_files(dir.path());
  const fs::path& registry = files.registry;
  const fs::path& gw_out = files.gateway_out;
  GatewayProcess gateway(net, files.gateway_config, dir.path() / "gw.stderr");
  if (!gateway.wait_ready()) {
    fmt::print(stderr, "gateway did not start:\n{}\n", gateway.log());
    return sizes;
  }
  fs::path coop_registry = cooperative ? registry : fs::path();
  auto rec_a = dir.path() / "recA", rec_b = dir.path() / "recB";
  NsProcess vm_b(net.ns("lan2"), record_args(rec_b, coop_registry, "vmB", 3, 2, 0, 2),
                 dir.path() / "b.out", dir.path() / "b.err");
  if (!vm_b.wait_output("net: waiting for frames", std::chrono::seconds(60))) return sizes;
  NsProcess vm_a(net.ns("lan1"), record_args(rec_a, coop_registry, "vmA", 2, 3, greetings, 3),
                 dir.path() / "a.out", dir.path() / "a.err");
  if (!vm_a.wait_output("net: sent", std::chrono::seconds(60))) return sizes;

  auto outside = net.socket_in("out", AF_INET, SOCK_DGRAM, 0);
  int no_check = 1;  // see coop_netns_test.cpp: same digest at the gateway and in the guest
  setsockopt(outside.get(), SOL_SOCKET, SO_NO_CHECK, &no_check, sizeof no_check);
  for (int i = 0; i < outside_per_guest; ++i) {
    for (const char* to : {Topology::kLan1Address, Topology::kLan2Address}) {
      // Incompressible payload (like most real traffic): zstd cannot hide the frames.
      std::string payload = fmt::format("outside-{}-", i);
      uint32_t state = static_cast<uint32_t>(i) * 2654435761u + (to[9] == '2' ? 1 : 2);
      while (payload.size() < payload_bytes) {
        state = state * 1664525u + 1013904223u;
        payload.push_back(static_cast<char>(state >> 24));
      }
      send_outside(outside, to, payload);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  send_outside(outside, Topology::kLan1Address, "RRQUIT");
  send_outside(outside, Topology::kLan2Address, "RRQUIT");
  int status_a = vm_a.wait_exit(std::chrono::seconds(300));
  int status_b = vm_b.wait_exit(std::chrono::seconds(300));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  gateway.signal(SIGTERM);
  gateway.wait_exit();
  if (status_a != 0 || status_b != 0) {
    fmt::print(stderr, "a recorder failed:\n{}\n{}\n", vm_a.err(), vm_b.err());
    return sizes;
  }
  for (const auto& recording : {rec_a, rec_b}) {
    auto inputs = read_inputs(recording);
    for (const auto& frame : inputs.full_frames) sizes.frame_bytes += frame.size();
    for (const auto& reference : inputs.references) sizes.frame_bytes += reference.size();
    sizes.full += inputs.by_channel["net0"];
    sizes.flagged += inputs.by_channel["net0.unauth"];
    sizes.references += inputs.by_channel["net0.ref"];
  }
  sizes.log_a = file_bytes(librr::RecordingDir::open(rec_a).log_path());
  sizes.log_b = file_bytes(librr::RecordingDir::open(rec_b).log_path());
  sizes.gateway = directory_bytes(gw_out);
  sizes.ok = true;
  return sizes;
}

}  // namespace

int main(int argc, char** argv) {
  int greetings = argc > 1 ? std::atoi(argv[1]) : 200;
  int outside = argc > 2 ? std::atoi(argv[2]) : 200;
  size_t payload = argc > 3 ? static_cast<size_t>(std::atoi(argv[3])) : 512;
  if (auto reason = netns_unavailable_reason(); !reason.empty()) {
    fmt::print(stderr, "bench_gateway_coop_logsize: SKIPPED: {}\n", reason);
    return 0;
  }
  for (auto needed : {build_dir() / "bin" / "rr-vmm", build_dir() / "guests" / "net.elf"})
    if (!fs::exists(needed)) {
      fmt::print(stderr, "bench_gateway_coop_logsize: SKIPPED: {} missing\n", needed.string());
      return 0;
    }
  fmt::print(
      "two recorded net guests: {} greetings A->B (each answered), {} UDP datagrams of {} "
      "random bytes from outside to each guest (each answered)\n\n",
      greetings, outside, payload);
  fmt::print("{:<12} | {:>10} {:>10} {:>10} | {:>12} {:>6} {:>6} {:>6} | {:>10} | {:>12}\n",
             "logging", "log A", "log B", "A+B", "frame recs", "full", "refs", "flag", "gateway",
             "A+B+gateway");
  Sizes plain = run(false, greetings, outside, payload);
  Sizes coop = run(true, greetings, outside, payload);
  for (auto [name, s] : {std::pair{"plain", plain}, std::pair{"cooperative", coop}}) {
    if (!s.ok) {
      fmt::print("{:<12} | run failed\n", name);
      continue;
    }
    fmt::print("{:<12} | {:>10} {:>10} {:>10} | {:>12} {:>6} {:>6} {:>6} | {:>10} | {:>12}\n", name,
               s.log_a, s.log_b, s.log_a + s.log_b, s.frame_bytes, s.full, s.references, s.flagged,
               s.gateway, s.log_a + s.log_b + s.gateway);
  }
  if (plain.ok && coop.ok) {
    auto percent = [](double part, double whole) { return 100.0 * part / whole; };
    fmt::print(
        "\ncooperative / plain: hosts' logs {:.0f}%, received-frame records {:.0f}%, hosts' logs + "
        "gateway log {:.0f}% (of the plain hosts' logs, which need no gateway log)\n",
        percent(double(coop.log_a + coop.log_b), double(plain.log_a + plain.log_b)),
        percent(double(coop.frame_bytes), double(plain.frame_bytes)),
        percent(double(coop.log_a + coop.log_b + coop.gateway), double(plain.log_a + plain.log_b)));
  }
  fmt::print(
      "\n'log' = the recording's log file on disk (compressed); 'frame recs' = bytes of its "
      "received-frame records (frames or references) before compression; 'gateway' = the "
      "gateway's segments and index.\n");
  return 0;
}
