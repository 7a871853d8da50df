// `rr-analyze dmesg REC [--at POS]`: the guest kernel's log rebuilt from its
// printk ring buffer in memory.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands/forensics.h"
#include "commands/forensics_common.h"
#include "os/linux_model.h"

namespace analyzer {
namespace {

struct DmesgOptions {
  InspectOptions inspect;
  bool console = false;
};

int print_log(const GuestSession& session, const DmesgOptions& options) {
  const auto* linux_model = dynamic_cast<const LinuxModel*>(&session.model());
  if (linux_model == nullptr) {
    // Other models may still have a log; this throws NotSupported otherwise.
    fmt::print("{}", session.model().kernel_log());
    return kExitOk;
  }
  const std::vector<LogRecord> records = linux_model->log_records();
  std::optional<int> below;
  if (options.console) below = linux_model->console_loglevel();
  if (options.inspect.recording.json) {
    nlohmann::json out = {{"position", session.position().to_string()},
                          {"banner", linux_model->banner()},
                          {"records", nlohmann::json::array()}};
    for (const LogRecord& r : records) {
      if (below && r.level >= *below) continue;
      out["records"].push_back({{"seq", r.sequence},
                                {"timestamp_ns", r.timestamp_ns},
                                {"level", r.level},
                                {"facility", r.facility},
                                {"text", r.text}});
    }
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("{}", LinuxModel::format_log(records, below));
  return kExitOk;
}

}  // namespace

void add_dmesg_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<DmesgOptions>();
  CLI::App* command = app.add_subcommand(
      "dmesg", "the guest kernel's log at a position, rebuilt from the printk ring buffer");
  options->inspect.add_to(*command);
  command->add_flag("--console", options->console,
                    "only what the console printed: records below the guest's console_loglevel");
  command->callback([options, &action] {
    action = [options] {
      return with_guest_session(options->inspect, [&](const GuestSession& session) {
        return print_log(session, *options);
      });
    };
  });
}

}  // namespace analyzer
