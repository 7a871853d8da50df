// Runs every measurement (each isolated in a child process with a deadline,
// all within the probe's overall budget) and derives the VMM's strategy.
#include <ctime>

#include "probe/isolated_item.h"
#include "probe/measurements.h"
#include "probe/probe_internal.h"
#include "probe/probe_json.h"

namespace vmm::probe {
namespace {

using Clock = std::chrono::steady_clock;

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

class ItemRunner {
 public:
  explicit ItemRunner(const ProbeOptions& options)
      : options_(options), deadline_(Clock::now() + options.total_budget) {}

  // Measures `measure` in a child; on failure returns `identity` (which names
  // the mode or CPL) marked unknown with the error.
  template <class Item, class Measure>
  Item run(const std::string& name, Item identity, Measure measure) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
    if (left.count() <= 0) {
      identity.error = name + ": not measured, the probe's time budget of " +
                       std::to_string(options_.total_budget.count()) + " ms is spent";
      return identity;
    }
    const nlohmann::json json = run_isolated(
        name, [&] { return nlohmann::json(measure()); }, std::min(options_.item_timeout, left));
    if (json.value("status", "") != "ok") {
      identity.status = "unknown";
      identity.error = json.value("error", "no error text");
      identity.seconds = json.value("seconds", 0.0);
      return identity;
    }
    return json.get<Item>();
  }

 private:
  const ProbeOptions& options_;
  Clock::time_point deadline_;
};

template <class Item>
Item with_cpl(int cpl) {
  Item item;
  item.cpl = cpl;
  return item;
}

}  // namespace

ProbeResult run_probe_for_host(const HostInfo& host, const ProbeOptions& options) {
  const auto start = Clock::now();
  ProbeResult result;
  result.host = host;
  result.cache_key = cache_key(host);
  result.measured_at = utc_now();
  ItemRunner items(options);

  for (GuestMode mode : {GuestMode::real16, GuestMode::protected32, GuestMode::long64_cpl0,
                         GuestMode::long64_cpl3, GuestMode::compat32_cpl3}) {
    ModeSpeed identity;
    identity.mode = std::string(mode_name(mode));
    identity.cpl = mode_cpl(mode);
    result.execution.push_back(
        items.run("execution " + identity.mode, identity, [mode] { return measure_speed(mode); }));
  }
  for (int cpl : {0, 3}) {
    const std::string suffix = " cpl" + std::to_string(cpl);
    result.single_step.push_back(items.run("single-step" + suffix, with_cpl<SingleStepCheck>(cpl),
                                           [cpl] { return measure_single_step(cpl); }));
    result.hw_breakpoint.push_back(items.run("hw breakpoint" + suffix,
                                             with_cpl<HwBreakpointCheck>(cpl),
                                             [cpl] { return measure_hw_breakpoint(cpl); }));
    result.sw_breakpoint.push_back(items.run("sw breakpoint" + suffix,
                                             with_cpl<SwBreakpointCheck>(cpl),
                                             [cpl] { return measure_sw_breakpoint(cpl); }));
    result.dirty_log.push_back(items.run("dirty log" + suffix, with_cpl<DirtyLogCheck>(cpl),
                                         [cpl] { return measure_dirty_log(cpl); }));
  }
  result.step_edges = items.run("single-step edges", StepEdgesCheck{}, measure_step_edges);
  result.cpuid = items.run("cpuid", CpuidCheck{}, measure_cpuid);
  result.perf = items.run("perf", PerfCheck{}, measure_perf);
  result.pio_exit = items.run("pio exit", PioCost{}, measure_pio_cost);
  result.stop = items.run("stop", StopCost{}, measure_stop_cost);
  result.syscall = items.run("syscall", SyscallCheck{}, measure_syscall);
  result.ud2_exception = items.run("ud2 exception", ExceptionCheck{}, measure_ud2_exception);

  result.strategy = derive_strategy(result);
  result.total_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

ProbeResult run_probe(const ProbeOptions& options) {
  const auto start = Clock::now();
  ProbeResult result = run_probe_for_host(collect_host_info(), options);
  result.total_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

namespace {

template <class Item>
const Item* find_cpl(const std::vector<Item>& items, int cpl) {
  for (const Item& item : items)
    if (item.cpl == cpl) return &item;
  return nullptr;
}

}  // namespace

const ModeSpeed* ProbeResult::speed(std::string_view mode) const {
  for (const ModeSpeed& item : execution)
    if (item.mode == mode) return &item;
  return nullptr;
}
const SingleStepCheck* ProbeResult::single_step_at(int cpl) const {
  return find_cpl(single_step, cpl);
}
const HwBreakpointCheck* ProbeResult::hw_breakpoint_at(int cpl) const {
  return find_cpl(hw_breakpoint, cpl);
}
const SwBreakpointCheck* ProbeResult::sw_breakpoint_at(int cpl) const {
  return find_cpl(sw_breakpoint, cpl);
}
const DirtyLogCheck* ProbeResult::dirty_log_at(int cpl) const { return find_cpl(dirty_log, cpl); }

}  // namespace vmm::probe
