#pragma once
// The cooperative-logging scenario shared by the acceptance test
// (coop_netns_test.cpp) and the log-size benchmark (bench/gateway_coop_logsize.cpp):
// two `net` guests in peer mode recorded by rr-vmm behind the test topology's
// LAN ports (netns_topology.h), with a control network for announcements.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstring>
#include <map>

#include "librr/events.h"
#include "librr/log.h"
#include "librr/recording.h"
#include "netns_topology.h"

namespace gateway_test {

namespace fs = std::filesystem;

inline constexpr const char* kGuestMacA = "02:00:00:77:00:02";  // = Topology::kLan1Mac
inline constexpr const char* kGuestMacB = "02:00:00:77:00:03";  // = Topology::kLan2Mac
inline const std::array<uint8_t, 6> kMacA = {2, 0, 0, 0x77, 0, 2};
inline const std::array<uint8_t, 6> kMacB = {2, 0, 0, 0x77, 0, 3};
inline const std::array<uint8_t, 6> kStrangerMac = {2, 0, 0, 0x55, 0, 1};

inline fs::path build_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path().parent_path();
}

// A process started inside a namespace, stdout and stderr to files.
class NsProcess {
 public:
  NsProcess(const std::string& netns, const std::vector<std::string>& argv, const fs::path& out,
            const fs::path& err)
      : out_(out), err_(err) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int n = ::open(("/run/netns/" + netns).c_str(), O_RDONLY);
      int null_fd = ::open("/dev/null", O_RDONLY);
      if (o < 0 || e < 0 || n < 0 || ::setns(n, CLONE_NEWNET) != 0) ::_exit(120);
      ::dup2(null_fd, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::setenv("RR_GUEST_DIR", (build_dir() / "guests").c_str(), 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(121);
    }
  }
  ~NsProcess() {
    if (pid_ > 0 && status_ < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::string out() const { return read_text(out_); }
  std::string err() const { return read_text(err_); }
  bool wait_output(const std::string& text, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (out().find(text) != std::string::npos) return true;
      if (exited()) return out().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  bool exited() {
    if (status_ >= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }
  // Exit status, or -1 after `limit`.
  int wait_exit(std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!exited() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return status_;
  }

 private:
  static std::string read_text(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  fs::path out_, err_;
  pid_t pid_ = -1;
  int status_ = -1;
};

// Puts a guest behind namespace `role`: its veth l0 and a TAP bridged, the
// namespace itself off the LAN (no address, another MAC), and a control veth
// to the gateway namespace for announcements.
inline void attach_guest_lan(const Topology& net, const std::string& role, int host) {
  std::string ns = "ip -n " + net.ns(role) + " ";
  // Bridged frames must reach the guests as they are: no netfilter on bridges
  // (br_netfilter, if loaded, would drop malformed IPv4 the test sends on purpose).
  for (const auto& where : {net.ns(role), net.ns("gw")})
    run_quietly("ip netns exec " + where +
                " sysctl -qw net.bridge.bridge-nf-call-iptables=0 "
                "net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0");
  must(ns + "addr flush dev l0");
  must(ns + "link set l0 down");
  must(ns + fmt::format("link set l0 address 02:00:00:77:01:{:02x}", host));
  must(ns +
       fmt::format("link add brg address 02:00:00:77:02:{:02x} mtu 9000 type bridge stp_state 0 "
                   "mcast_snooping 0",
                   host));
  must(ns + "tuntap add dev tap0 mode tap");
  must(ns + "link set tap0 mtu 9000");
  must(ns + "link set l0 master brg");
  must(ns + "link set tap0 master brg");
  for (auto link : {"l0", "brg", "tap0"}) must(ns + "link set " + std::string(link) + " up");
  std::string control = fmt::format("c{}", host);
  must(fmt::format("ip link add c0 netns {} type veth peer name {} netns {}", net.ns(role), control,
                   net.ns("gw")));
  must(ns + fmt::format("addr add 10.88.{}.2/24 dev c0", host));
  must(ns + "link set c0 up");
  must(ns + fmt::format("route add 10.88.0.0/16 via 10.88.{}.1", host));
  must("ip -n " + net.ns("gw") + fmt::format(" addr add 10.88.{}.1/24 dev {}", host, control));
  must("ip -n " + net.ns("gw") + " link set " + control + " up");
}

inline std::string hex_key(uint8_t seed) {
  std::string key;
  for (int i = 0; i < 32; ++i) key += fmt::format("{:02x}", static_cast<uint8_t>(seed * 31 + i));
  return key;
}

// The files of one scenario run in `dir`: the host registry (both guests and
// the gateway with their keys), the gateway's configuration and its output.
struct ScenarioFiles {
  fs::path registry, gateway_config, gateway_out;
};

inline ScenarioFiles write_scenario_files(const fs::path& dir) {
  ScenarioFiles files{dir / "registry.json", dir / "gw.conf", dir / "gw"};
  std::ofstream(files.registry) << fmt::format(
      R"({{"gateway": {{"name": "gw", "key": "{}"}},
  "hosts": [{{"name": "vmA", "macs": ["{}"], "ips": ["10.77.0.2"], "key": "{}"}},
            {{"name": "vmB", "macs": ["{}"], "ips": ["10.77.0.3"], "key": "{}"}}]}})",
      hex_key(1), kGuestMacA, hex_key(2), kGuestMacB, hex_key(3));
  std::ofstream(files.gateway_config)
      << "lan_if = lan0, lan1\nwan_if = wan0\nlan_prefix = 10.77.0.0/24\n"
      << "out = " << files.gateway_out.string() << "\nflush_ms = 20\n"
      << "registry = " << files.registry.string() << "\nannounce_port = 9500\n"
      << "announce_publish = 10.88.2.2:9501, 10.88.3.2:9501\n";
  return files;
}

// `registry` empty: plain recording (no cooperative logging), same guest and network.
inline std::vector<std::string> record_args(const fs::path& recording, const fs::path& registry,
                                            const std::string& name, int self, int peer, int kicks,
                                            int other_host) {
  std::vector<std::string> args = {
      (build_dir() / "bin" / "rr-vmm").string(),
      "record",
      "--out",
      recording.string(),
      "--guest",
      "net",
      "--serial-in",
      "none",
      "--net",
      "tap:tap0",
      "--append",
      fmt::format("self={} peer={} kick={}", self, peer, kicks),
  };
  if (registry.empty()) return args;
  for (const std::string& arg : std::vector<std::string>{
           "--coop-registry", registry.string(), "--coop-name", name, "--announce",
           fmt::format("10.88.{}.1:9500", self),                      // the gateway
           "--announce", fmt::format("10.88.{}.2:9501", other_host),  // the other recorder
           "--coop-listen", "9501", "--coop-wait-ms", "1000", "--coop-gateway-wait-ms", "3000"})
    args.push_back(arg);
  return args;
}

// UDP from the outside namespace to a LAN guest, with a payload the test recognises.
inline void send_outside(const gateway::UniqueFd& socket, const char* to,
                         const std::string& payload) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(9100);
  inet_pton(AF_INET, to, &address.sin_addr);
  if (::sendto(socket.get(), payload.data(), payload.size(), 0,
               reinterpret_cast<sockaddr*>(&address),
               sizeof address) != static_cast<ssize_t>(payload.size()))
    throw std::runtime_error(fmt::format("send to {}: {}", to, std::strerror(errno)));
}

// A raw frame injected on interface l0 of namespace `role` (towards the gateway).
inline void inject(const Topology& net, const std::string& role,
                   const std::vector<uint8_t>& frame) {
  auto raw = net.socket_in(role, AF_PACKET, SOCK_RAW, 0);
  gateway::UniqueFd self(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  gateway::UniqueFd target(::open(("/run/netns/" + net.ns(role)).c_str(), O_RDONLY | O_CLOEXEC));
  if (::setns(target.get(), CLONE_NEWNET) != 0) throw std::runtime_error("setns failed");
  unsigned index = if_nametoindex("l0");
  ::setns(self.get(), CLONE_NEWNET);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(index);
  to.sll_protocol = static_cast<uint16_t>(frame[13] << 8 | frame[12]);  // ethertype, network order
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, frame.data(), 6);
  if (::sendto(raw.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to),
               sizeof to) != static_cast<ssize_t>(frame.size()))
    throw std::runtime_error(
        fmt::format("inject {} bytes in {}: {}", frame.size(), role, std::strerror(errno)));
}

// Fills in the header checksum of the IPv4 packet at the start of `ip` (bridges
// with br_netfilter drop IPv4 frames whose header does not verify).
inline void set_ipv4_checksum(std::vector<uint8_t>& ip) {
  ip[10] = ip[11] = 0;
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < 20; i += 2) sum += uint32_t(ip[i]) << 8 | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = static_cast<uint8_t>(~sum >> 8);
  ip[11] = static_cast<uint8_t>(~sum);
}

inline std::vector<uint8_t> ethernet(const std::array<uint8_t, 6>& destination,
                                     const std::array<uint8_t, 6>& source, uint16_t type,
                                     std::vector<uint8_t> payload) {
  std::vector<uint8_t> frame(destination.begin(), destination.end());
  frame.insert(frame.end(), source.begin(), source.end());
  frame.push_back(static_cast<uint8_t>(type >> 8));
  frame.push_back(static_cast<uint8_t>(type));
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

struct LoggedInputs {
  std::map<std::string, uint64_t> by_channel;
  std::vector<std::vector<uint8_t>> full_frames;  // net0 and net0.unauth
  std::vector<std::vector<uint8_t>> references;
};

inline LoggedInputs read_inputs(const fs::path& recording) {
  LoggedInputs inputs;
  auto dir = librr::RecordingDir::open(recording);
  librr::LogReader reader(dir.log_path());
  while (auto event = reader.next()) {
    const auto* input = std::get_if<librr::Input>(&*event);
    if (!input || input->channel.rfind("net0", 0) != 0) continue;
    ++inputs.by_channel[input->channel];
    (input->channel == "net0.ref" ? inputs.references : inputs.full_frames).push_back(input->data);
  }
  return inputs;
}

inline bool has_source(const std::vector<uint8_t>& frame, const std::array<uint8_t, 6>& mac) {
  return frame.size() >= 12 && std::equal(mac.begin(), mac.end(), frame.begin() + 6);
}

// "net: frames=N hash=H" from the guest's console (record or replay).
inline std::string guest_result(const std::string& console) {
  auto at = console.find("net: frames=");
  return at == std::string::npos ? "" : console.substr(at, console.find('\n', at) - at);
}

}  // namespace gateway_test
