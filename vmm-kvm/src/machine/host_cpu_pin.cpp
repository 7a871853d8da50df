#include "machine/host_cpu_pin.h"

#include <fmt/format.h>
#include <sched.h>

#include <cerrno>
#include <cstring>

namespace vmm {

std::optional<int> pin_to_current_host_cpu() {
  const int cpu = sched_getcpu();
  if (cpu < 0 || pin_to_host_cpu(cpu)) return std::nullopt;
  return cpu;
}

std::optional<std::string> pin_to_host_cpu(int cpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
    return fmt::format("sched_getaffinity: {}", std::strerror(errno));
  if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed))
    return fmt::format("host CPU {} is not one this process may run on", cpu);
  cpu_set_t only;
  CPU_ZERO(&only);
  CPU_SET(cpu, &only);
  if (sched_setaffinity(0, sizeof only, &only) != 0)
    return fmt::format("sched_setaffinity to host CPU {}: {}", cpu, std::strerror(errno));
  return std::nullopt;
}

}  // namespace vmm
