// `rr-analyze ps REC [--at POS]`: the guest's task list, read from its memory.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands/forensics.h"
#include "commands/forensics_common.h"

namespace analyzer {
namespace {

nlohmann::json process_json(const Process& p) {
  nlohmann::json j = {{"pid", p.pid},
                      {"tgid", p.tgid},
                      {"ppid", p.parent_pid},
                      {"name", p.name},
                      {"state", p.state},
                      {"kernel_thread", p.kernel_thread},
                      {"page_table", p.page_table},
                      {"address", p.address}};
  if (p.uid >= 0) j["uid"] = p.uid;
  if (p.gid >= 0) j["gid"] = p.gid;
  if (!p.details.empty()) j["details"] = p.details;
  return j;
}

int print_processes(const GuestSession& session, bool json) {
  const std::vector<Process> processes = session.model().processes();
  if (json) {
    nlohmann::json out = {{"position", session.position().to_string()},
                          {"os", session.model().name()},
                          {"processes", nlohmann::json::array()}};
    for (const Process& p : processes) out["processes"].push_back(process_json(p));
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("{:>7} {:>7} {:>7} {:>5} {:>5} {:<13} {:<18} {}\n", "PID", "TGID", "PPID", "UID",
             "GID", "STATE", "PAGE TABLE", "NAME");
  for (const Process& p : processes) {
    const auto number = [](int64_t v) { return v < 0 ? std::string("-") : std::to_string(v); };
    const std::string name =
        p.kernel_thread && session.profile().os() == "linux" ? "[" + p.name + "]" : p.name;
    fmt::print("{:>7} {:>7} {:>7} {:>5} {:>5} {:<13} {:<18} {}\n", p.pid, p.tgid,
               number(p.parent_pid), number(p.uid), number(p.gid), p.state,
               p.page_table ? fmt::format("{:#x}", p.page_table) : "-", name);
  }
  return kExitOk;
}

}  // namespace

void add_ps_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* command = app.add_subcommand(
      "ps", "the guest's processes at a position, read from its memory through its profile");
  options->add_to(*command);
  command->callback([options, &action] {
    action = [options] {
      return with_guest_session(*options, [&](const GuestSession& session) {
        return print_processes(session, options->recording.json);
      });
    };
  });
}

}  // namespace analyzer
