#pragma once
// A throw-away network built from namespaces and veth pairs for the gateway's
// end-to-end tests:
//
//   out (10.99.1.2) --- wan0 [gw: router 10.99.1.1 | br0 10.77.0.1] lan0 --- lan1 (10.77.0.2)
//                                                                   lan1 --- lan2 (10.77.0.3)
//
// lan0 and lan1 are ports of a bridge in the gateway namespace, so LAN-to-LAN
// traffic between lan1 and lan2 crosses the gateway's capture interfaces.
// Static ARP and FDB entries and disabled IPv6 keep the wire free of anything
// but the test's own frames. Names are unique per process and test; the
// destructor removes every namespace (and with them the veths).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "unique_fd.h"

namespace gateway_test {

inline bool run_quietly(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

inline void must(const std::string& command) {
  int status = 0;
  auto output = run_command(command + " 2>&1", &status);
  if (status != 0) throw std::runtime_error("command failed: " + command + "\n" + output);
}

// Why the topology cannot be built here, or empty if it can.
inline std::string netns_unavailable_reason() {
  if (geteuid() != 0) return "needs root for network namespaces";
  if (!run_quietly("command -v ip")) return "iproute2 'ip' missing";
  std::string probe = "rrgwprobe" + std::to_string(getpid());
  if (!run_quietly("ip netns add " + probe)) return "cannot create a network namespace";
  run_quietly("ip netns del " + probe);
  return {};
}

class Topology {
 public:
  static constexpr const char* kOutAddress = "10.99.1.2";
  static constexpr const char* kLan1Address = "10.77.0.2";
  static constexpr const char* kLan2Address = "10.77.0.3";

  explicit Topology(int mtu = 1500) {
    static int counter = 0;
    prefix_ = "rrgw" + std::to_string(getpid()) + "x" + std::to_string(counter++);
    try {
      build(mtu);
    } catch (...) {
      remove();
      throw;
    }
  }
  ~Topology() { remove(); }
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  std::string ns(const std::string& role) const { return prefix_ + "-" + role; }

  // A socket created inside namespace `role` (it stays there after we switch back).
  gateway::UniqueFd socket_in(const std::string& role, int domain, int type, int protocol) const {
    gateway::UniqueFd self(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    gateway::UniqueFd target(::open(("/run/netns/" + ns(role)).c_str(), O_RDONLY | O_CLOEXEC));
    if (!self.valid() || !target.valid()) throw std::runtime_error("cannot open netns files");
    if (::setns(target.get(), CLONE_NEWNET) != 0) throw std::runtime_error("setns failed");
    gateway::UniqueFd s(::socket(domain, type | SOCK_CLOEXEC, protocol));
    ::setns(self.get(), CLONE_NEWNET);
    if (!s.valid()) throw std::runtime_error("socket in namespace failed");
    return s;
  }

 private:
  void build(int mtu) {
    for (auto role : {"out", "gw", "lan1", "lan2"}) {
      must("ip netns add " + ns(role));
      created_.push_back(ns(role));
      must("ip netns exec " + ns(role) +
           " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
      must("ip -n " + ns(role) + " link set lo up");
    }
    auto veth = [&](const std::string& a_ns, const std::string& a, const std::string& a_mac,
                    const std::string& b_ns, const std::string& b, const std::string& b_mac) {
      must("ip link add " + a + " netns " + ns(a_ns) + " address " + a_mac + " mtu " +
           std::to_string(mtu) + " type veth peer name " + b + " netns " + ns(b_ns) + " address " +
           b_mac + " mtu " + std::to_string(mtu));
      must("ip -n " + ns(a_ns) + " link set " + a + " up");
      must("ip -n " + ns(b_ns) + " link set " + b + " up");
    };
    veth("out", "o0", kOutMac, "gw", "wan0", kWanMac);
    veth("lan1", "l0", kLan1Mac, "gw", "lan0", "02:00:00:77:00:10");
    veth("lan2", "l0", kLan2Mac, "gw", "lan1", "02:00:00:77:00:11");
    std::string gw = "ip -n " + ns("gw") + " ";
    must(gw + "link add br0 address " + std::string(kBridgeMac) + " mtu " + std::to_string(mtu) +
         " type bridge stp_state 0 mcast_snooping 0");
    must(gw + "link set lan0 master br0");
    must(gw + "link set lan1 master br0");
    must(gw + "link set br0 up");
    must(gw + "addr add 10.99.1.1/24 dev wan0");
    must(gw + "addr add 10.77.0.1/24 dev br0");
    must("ip netns exec " + ns("gw") + " sysctl -qw net.ipv4.ip_forward=1");
    // Known MACs everywhere: no ARP and no flooding of unknown unicast.
    must("bridge -n " + ns("gw") + " fdb add " + kLan1Mac + " dev lan0 master static");
    must("bridge -n " + ns("gw") + " fdb add " + kLan2Mac + " dev lan1 master static");
    must(gw + "neigh replace 10.99.1.2 lladdr " + kOutMac + " dev wan0 nud permanent");
    must(gw + "neigh replace 10.77.0.2 lladdr " + kLan1Mac + " dev br0 nud permanent");
    must(gw + "neigh replace 10.77.0.3 lladdr " + kLan2Mac + " dev br0 nud permanent");
    must("ip -n " + ns("out") + " addr add 10.99.1.2/24 dev o0");
    must("ip -n " + ns("out") + " route add default via 10.99.1.1");
    must("ip -n " + ns("out") + " neigh replace 10.99.1.1 lladdr " + kWanMac +
         " dev o0 nud permanent");
    for (auto [role, address] : {std::pair{"lan1", "10.77.0.2"}, std::pair{"lan2", "10.77.0.3"}}) {
      std::string lan = "ip -n " + ns(role) + " ";
      must(lan + "addr add " + address + "/24 dev l0");
      must(lan + "route add default via 10.77.0.1");
      must(lan + "neigh replace 10.77.0.1 lladdr " + kBridgeMac + " dev l0 nud permanent");
      must(lan + "neigh replace 10.77.0.2 lladdr " + kLan1Mac + " dev l0 nud permanent");
      must(lan + "neigh replace 10.77.0.3 lladdr " + kLan2Mac + " dev l0 nud permanent");
    }
  }

  void remove() {
    for (const auto& name : created_) run_quietly("ip netns del " + name);
    created_.clear();
  }

 public:
  static constexpr const char* kOutMac = "02:00:00:99:01:02";
  static constexpr const char* kWanMac = "02:00:00:99:01:01";
  static constexpr const char* kBridgeMac = "02:00:00:77:00:01";
  static constexpr const char* kLan1Mac = "02:00:00:77:00:02";
  static constexpr const char* kLan2Mac = "02:00:00:77:00:03";

 private:
  std::string prefix_;
  std::vector<std::string> created_;
};

// rr-gateway running inside the gateway namespace, stderr captured to a file.
class GatewayProcess {
 public:
  GatewayProcess(const Topology& topology, const std::filesystem::path& config,
                 const std::filesystem::path& stderr_file,
                 const std::string& binary = default_binary())
      : stderr_file_(stderr_file) {
    std::string netns = "/run/netns/" + topology.ns("gw");
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int ns = ::open(netns.c_str(), O_RDONLY);
      if (fd < 0 || ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) ::_exit(120);
      ::dup2(fd, 2);
      ::execl(binary.c_str(), binary.c_str(), "--config", config.c_str(), nullptr);
      ::_exit(121);
    }
  }
  // rr-gateway next to the running executable (tests and benchmarks live in bin/ too).
  static std::string default_binary() {
    return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "rr-gateway").string();
  }
  pid_t pid() const { return pid_; }

  ~GatewayProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  std::string log() const {
    std::ifstream in(stderr_file_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Waits (bounded) until stderr contains `text`.
  bool wait_for_log(const std::string& text,
                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (log().find(text) != std::string::npos) return true;
      if (!exited_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
      if (exited_) return log().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  bool wait_ready() { return wait_for_log("logging frames entering the LAN"); }
  void signal(int number) { ::kill(pid_, number); }
  // Exit status, or -1 if it did not exit within the limit.
  int wait_exit(std::chrono::milliseconds limit = std::chrono::seconds(15)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!exited_ && std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, &status_, WNOHANG) == pid_)
        exited_ = true;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited_) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  // The numbers of the "summary:" line: frames_seen=..., logged=..., ...
  std::map<std::string, uint64_t> summary() const {
    std::map<std::string, uint64_t> values;
    auto text = log();
    auto at = text.rfind("summary:");
    if (at == std::string::npos) return values;
    std::istringstream line(text.substr(at + 8, text.find('\n', at) - at - 8));
    std::string item;
    while (line >> item) {
      auto eq = item.find('=');
      if (eq != std::string::npos) values[item.substr(0, eq)] = std::stoull(item.substr(eq + 1));
    }
    return values;
  }

 private:
  std::filesystem::path stderr_file_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = false;
};

}  // namespace gateway_test
