// `rr-analyze timeline REC [--kinds K,...] [--from POS] [--to POS] [--json]`:
// what the guest OS did, event by event, found by replaying the recording
// with breakpoints on kernel functions (timeline/timeline.h).
#include "timeline/timeline.h"

#include <fmt/format.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "commands/forensics.h"
#include "commands/travel_errors.h"
#include "librr/recording.h"
#include "librr/replayer.h"
#include "os/kernel_memory.h"
#include "os/os_model.h"
#include "profile/profile_store.h"
#include "travel/position_spec.h"

namespace analyzer {
namespace {

struct TimelineCommandOptions {
  RecordingOptions recording;
  std::string profile;
  std::vector<std::string> kinds;
  std::string from = "start";
  std::string to = "end";
  bool force = false;
};

// Bytes as a C string literal body: printable ASCII kept, the rest escaped.
std::string escaped(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c == '\n')
      out += "\\n";
    else if (c == '"' || c == '\\')
      out += fmt::format("\\{}", static_cast<char>(c));
    else if (c >= 0x20 && c < 0x7f)
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

std::string result_text(const TimelineEvent& e) {
  return e.result ? fmt::format(" = {}", *e.result) : "";
}

std::string details_text(const TimelineEvent& e) {
  if (!e.error.empty()) return "(unreadable: " + e.error + ")";
  if (e.kind == kEventProcessCreate) return fmt::format("child {}", e.child_pid);
  if (e.kind == kEventExec) {
    std::vector<std::string> quoted;
    for (const std::string& a : e.argv) quoted.push_back("\"" + escaped(a) + "\"");
    return fmt::format("{} [{}]{}", e.path, fmt::join(quoted, ", "), result_text(e));
  }
  if (e.kind == kEventExit) return fmt::format("code {}", e.exit_code);
  if (e.kind == kEventFileOpen) return e.path + result_text(e);
  if (e.kind == kEventFileWrite || e.kind == kEventNetSend || e.kind == kEventNetReceive)
    return fmt::format("{} {} bytes{}", e.path.empty() ? "-" : e.path, e.length, result_text(e));
  if (e.kind == kEventSyscall) {
    std::vector<std::string> args;
    for (uint64_t a : e.args) args.push_back(fmt::format("{:#x}", a));
    std::string text = fmt::format(
        "{}({}){}", e.syscall_name.empty() ? std::to_string(e.syscall_number) : e.syscall_name,
        fmt::join(args, ", "), result_text(e));
    if (!e.data.empty()) text += " \"" + escaped(e.data) + "\"";
    return text;
  }
  return "";
}

nlohmann::json event_json(const TimelineEvent& e) {
  nlohmann::json j = {{"position", e.position.to_string()},
                      {"kind", e.kind},
                      {"function", e.function},
                      {"pid", e.pid},
                      {"comm", e.comm}};
  if (!e.path.empty()) j["path"] = e.path;
  if (e.kind == kEventExec) j["argv"] = e.argv;
  if (e.kind == kEventProcessCreate) j["child_pid"] = e.child_pid;
  if (e.kind == kEventExit) j["exit_code"] = e.exit_code;
  if (e.kind == kEventFileWrite || e.kind == kEventNetSend || e.kind == kEventNetReceive ||
      !e.data.empty())
    j["length"] = e.length;
  if (!e.data.empty()) j["data"] = escaped(e.data);
  if (e.kind == kEventSyscall) {
    j["number"] = e.syscall_number;
    j["name"] = e.syscall_name;
    j["args"] = e.args;
  }
  if (e.result) j["result"] = *e.result;
  if (e.result_position) j["result_position"] = e.result_position->to_string();
  if (!e.error.empty()) j["error"] = e.error;
  return j;
}

std::set<std::string> parse_kinds(const std::vector<std::string>& words) {
  std::set<std::string> kinds;
  for (const std::string& word : words)
    if (!word.empty()) kinds.insert(word);
  return kinds;
}

Profile load_profile(const librr::RecordingDir& dir, const std::string& explicit_path) {
  try {
    return profile_for_recording(dir.manifest(), explicit_path);
  } catch (const librr::FormatError&) {
    throw;
  } catch (const librr::Error& e) {
    throw librr::Error(fmt::format(
        "{}\n(a profile is made from the guest kernel's ELF with debug info: rr-analyze profile "
        "generate --elf vmlinux --out kernel.json, then pass --profile kernel.json)",
        e.what()));
  }
}

// Where a range bound lies. Only names found by replaying (pc hits,
// interrupts, inputs) are sought here: `end` or an exact position costs no
// replay before the passes.
librr::Position resolve_bound(TimeTraveler& traveler, const PositionSpec& spec,
                              const librr::RecordingDir& dir,
                              const std::optional<librr::Key>& key) {
  if (spec.kind == PositionSpec::Kind::kEnd) return traveler.end();
  if (spec.kind == PositionSpec::Kind::kExact) return spec.exact;
  seek_to(traveler, spec, dir.log_path(), key);
  return traveler.position();  // a range bound is exact (for a pc@hit name: single steps)
}

int run_timeline(const TimelineCommandOptions& options) {
  const std::optional<librr::Key> key = options.recording.key();
  const PositionSpec from_spec = PositionSpec::parse(options.from);
  const PositionSpec to_spec = PositionSpec::parse(options.to);
  const librr::RecordingDir dir = librr::RecordingDir::open(options.recording.recording);
  // The profile first: a missing or unusable one is reported before any replay.
  const Profile profile = load_profile(dir, options.profile);

  const bool terminal = isatty(STDERR_FILENO) != 0;
  std::string pass_name;
  TravelOptions travel;
  travel.key = key;
  travel.force = options.force;
  travel.checkpoint_interval_seconds = kTimelineCheckpointInterval;
  TimeTraveler traveler(options.recording.recording, travel);

  TimelineOptions timeline;
  timeline.kinds = parse_kinds(options.kinds);
  timeline.from = resolve_bound(traveler, from_spec, dir, key);
  timeline.to = resolve_bound(traveler, to_spec, dir, key);
  if (terminal) {
    timeline.on_pass = [&](const std::string& name) { pass_name = name; };
    timeline.progress = [&](double fraction) {
      fmt::print(stderr, "\r\033[Krr-analyze: timeline {} {:3.0f}%", pass_name, fraction * 100);
      std::fflush(stderr);
    };
  }
  const std::vector<TimelineEvent> events = build_timeline(traveler, profile, timeline);
  if (terminal) fmt::print(stderr, "\r\033[K");

  if (options.recording.json) {
    nlohmann::json out = {{"from", timeline.from->to_string()},
                          {"to", timeline.to->to_string()},
                          {"os", profile.os()},
                          {"events", nlohmann::json::array()}};
    for (const TimelineEvent& e : events) out["events"].push_back(event_json(e));
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("{:<22} {:>6} {:<16} {:<15} {}\n", "POSITION", "PID", "COMM", "KIND", "DETAILS");
  for (const TimelineEvent& e : events)
    fmt::print("{:<22} {:>6} {:<16} {:<15} {}\n", e.position.to_string(), e.pid, e.comm, e.kind,
               details_text(e));
  return kExitOk;
}

}  // namespace

void add_timeline_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<TimelineCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "timeline",
      "the guest OS's events (processes, execs, exits, files, network; the test guest's system "
      "calls) with their positions, found by replaying with breakpoints on kernel functions");
  options->recording.add_to(*command);
  command->add_option("--profile", options->profile,
                      "ISF profile of the guest kernel (default: generated from the recorded "
                      "kernel ELF and cached)");
  command
      ->add_option("--kinds", options->kinds,
                   "event kinds to collect, comma-separated (default: all): process_create, "
                   "exec, exit, file_open, file_write, net_send, net_receive (Linux); syscall "
                   "(test guest). Fewer kinds, fewer replay passes")
      ->delimiter(',');
  command->add_option("--from", options->from, "first position to replay (default: start)");
  command->add_option("--to", options->to, "last position to replay (default: end)");
  command->add_flag("--force", options->force,
                    "replay even on another CPU or device-model version");
  command->callback([options, &action] {
    action = [options] {
      try {
        return run_timeline(*options);
      } catch (const ProfileMismatch& e) {
        fmt::print(stderr, "rr-analyze: wrong profile: {}\n", e.what());
        return static_cast<int>(kExitUsage);
      } catch (const GuestReadError& e) {
        fmt::print(stderr, "rr-analyze: guest memory: {}\n", e.what());
        return static_cast<int>(kExitProblem);
      } catch (const PositionSyntaxError&) {
        return report_travel_error(std::current_exception());
      } catch (const PositionPastEnd&) {
        return report_travel_error(std::current_exception());
      } catch (const librr::Divergence&) {
        return report_travel_error(std::current_exception());
      }
    };
  });
}

}  // namespace analyzer
