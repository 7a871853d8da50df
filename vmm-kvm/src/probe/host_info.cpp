// Who the host is (kernel, CPU, KVM module) and what KVM says it supports:
// the identity that keys the probe cache, and the capability list.
#include <sys/utsname.h>
#include <xxhash.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kvm/kvm.h"
#include "probe/probe.h"

namespace vmm::probe {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string cpuinfo_field(const std::string& name) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
  }
  return "";
}

// The GNU build-id note of the running kernel (identifies a built-in KVM).
std::string kernel_build_id() {
  const std::string notes = read_text("/sys/kernel/notes");
  size_t at = 0;
  auto word = [&](size_t offset) {
    uint32_t value = 0;
    std::memcpy(&value, notes.data() + offset, 4);
    return value;
  };
  while (at + 12 <= notes.size()) {
    const uint32_t name_size = word(at), desc_size = word(at + 4), type = word(at + 8);
    const size_t name_at = at + 12, desc_at = name_at + ((name_size + 3) & ~3u);
    if (desc_at + desc_size > notes.size()) break;
    if (type == 3 && name_size == 4 && notes.compare(name_at, 3, "GNU") == 0) {
      std::string hex;
      for (size_t i = 0; i < desc_size; ++i) {
        static const char digits[] = "0123456789abcdef";
        const auto byte = static_cast<uint8_t>(notes[desc_at + i]);
        hex += digits[byte >> 4];
        hex += digits[byte & 15];
      }
      return hex;
    }
    at = desc_at + ((desc_size + 3) & ~3u);
  }
  return "";
}

// "name=value;..." over a module's parameters (they change KVM's behaviour:
// enable_pmu, or pvm's emulation knobs), sorted for a stable key.
std::string module_parameters(const std::string& module) {
  const fs::path dir = fs::path("/sys/module") / module / "parameters";
  std::vector<std::string> entries;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error))
    entries.push_back(entry.path().filename().string() + "=" + read_text(entry.path()));
  std::sort(entries.begin(), entries.end());
  std::string joined;
  for (const auto& entry : entries) joined += entry + ";";
  return joined;
}

struct NamedCapability {
  const char* name;
  long value;
};

// The capabilities the VMM uses or may use; reported by name so the JSON
// reads without linux/kvm.h at hand.
constexpr NamedCapability kCapabilities[] = {
    {"USER_MEMORY", KVM_CAP_USER_MEMORY},
    {"SET_TSS_ADDR", KVM_CAP_SET_TSS_ADDR},
    {"EXT_CPUID", KVM_CAP_EXT_CPUID},
    {"IRQCHIP", KVM_CAP_IRQCHIP},
    {"PIT2", KVM_CAP_PIT2},
    {"SET_GUEST_DEBUG", KVM_CAP_SET_GUEST_DEBUG},
    {"DEBUGREGS", KVM_CAP_DEBUGREGS},
    {"VCPU_EVENTS", KVM_CAP_VCPU_EVENTS},
    {"XSAVE", KVM_CAP_XSAVE},
    {"XCRS", KVM_CAP_XCRS},
    {"XSAVE2", KVM_CAP_XSAVE2},
    {"SYNC_REGS", KVM_CAP_SYNC_REGS},
    {"IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT},
    {"READONLY_MEM", KVM_CAP_READONLY_MEM},
    {"X86_USER_SPACE_MSR", KVM_CAP_X86_USER_SPACE_MSR},
    {"X86_MSR_FILTER", KVM_CAP_X86_MSR_FILTER},
    {"DIRTY_LOG_RING", KVM_CAP_DIRTY_LOG_RING},
    {"MANUAL_DIRTY_LOG_PROTECT2", KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2},
    {"TSC_CONTROL", KVM_CAP_TSC_CONTROL},
    {"GET_TSC_KHZ", KVM_CAP_GET_TSC_KHZ},
    {"ADJUST_CLOCK", KVM_CAP_ADJUST_CLOCK},
    {"X86_DISABLE_EXITS", KVM_CAP_X86_DISABLE_EXITS},
    {"EXCEPTION_PAYLOAD", KVM_CAP_EXCEPTION_PAYLOAD},
    {"PMU_CAPABILITY", KVM_CAP_PMU_CAPABILITY},
    {"NR_VCPUS", KVM_CAP_NR_VCPUS},
    {"MAX_VCPUS", KVM_CAP_MAX_VCPUS},
};

}  // namespace

HostInfo collect_host_info() {
  const auto start = std::chrono::steady_clock::now();
  HostInfo host;
  utsname names{};
  if (uname(&names) == 0) host.kernel_release = names.release;
  host.kernel_version = read_text("/proc/version");
  host.cpu_vendor = cpuinfo_field("vendor_id");
  host.cpu_model = cpuinfo_field("model name");
  host.enable_pmu = read_text("/sys/module/kvm/parameters/enable_pmu");

  std::string identity;
  for (const char* module : {"kvm", "kvm_intel", "kvm_amd", "kvm_pvm"}) {
    const fs::path dir = fs::path("/sys/module") / module;
    if (!fs::exists(dir)) continue;
    if (std::string(module) != "kvm")
      host.kvm_backend += (host.kvm_backend.empty() ? "" : "+") + std::string(module);
    const std::string srcversion = read_text(dir / "srcversion");
    identity += std::string(module) + ":" +
                (srcversion.empty() ? "built-in" : "srcversion=" + srcversion) + " ";
  }
  if (host.kvm_backend.empty()) host.kvm_backend = "none loaded";
  identity += "kernel-build-id=" + kernel_build_id();
  if (host.kvm_backend != "none loaded") {
    const std::string parameters =
        module_parameters(host.kvm_backend.substr(0, host.kvm_backend.find('+'))) +
        "kvm.enable_pmu=" + host.enable_pmu;
    char digest[17];
    std::snprintf(digest, sizeof digest, "%016llx",
                  static_cast<unsigned long long>(XXH64(parameters.data(), parameters.size(), 0)));
    identity += std::string(" parameters=") + digest;
  }
  host.kvm_identity = identity;

  try {
    kvm::System system;
    host.api_version = system.api_version();
    for (const auto& capability : kCapabilities)
      host.capabilities[capability.name] = system.check_extension(capability.value);
    host.status = "ok";
  } catch (const std::exception& error) {
    host.error = error.what();
  }
  host.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return host;
}

std::string cache_key(const HostInfo& host) {
  const std::string material = "probe-v" + std::to_string(kProbeVersion) + "\n" +
                               host.kernel_release + "\n" + host.kvm_identity + "\n" +
                               host.cpu_vendor + "\n" + host.cpu_model;
  char key[17];
  std::snprintf(key, sizeof key, "%016llx",
                static_cast<unsigned long long>(XXH64(material.data(), material.size(), 0)));
  return key;
}

}  // namespace vmm::probe
