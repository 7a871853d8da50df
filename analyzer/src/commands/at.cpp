// `rr-analyze at REC POS regs|mem|disasm`: replays the recording to POS
// (travel/position_spec.h for the names) and shows the machine there.
#include "commands/at.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "commands/at_views.h"
#include "commands/travel_errors.h"
#include "librr/recording.h"
#include "librr/replayer.h"
#include "replay/replay_machine.h"
#include "travel/position_spec.h"
#include "travel/time_traveler.h"

namespace analyzer {
namespace {

enum class View { kRegs, kMem, kDisasm };

struct AtOptions {
  RecordingOptions recording;
  std::string position;
  bool force = false;
  View view = View::kRegs;
  std::string mem_address;
  std::string mem_length;
  bool physical = false;
  std::vector<std::string> disasm_args;  // [ADDR] [N]
  std::string symbols;
};

uint64_t parse_number(const std::string& text, const char* what) {
  try {
    size_t used = 0;
    const uint64_t value = std::stoull(text, &used, 0);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw PositionSyntaxError(fmt::format("{} '{}' is not a number (decimal or 0x hex)", what, text));
}

// "\rreplaying L1234/L56789 (2%)" while attached to a terminal.
std::function<void(double)> terminal_progress() {
  if (!isatty(STDERR_FILENO)) return {};
  return [](double fraction) {
    std::fprintf(stderr, "\rrr-analyze: replaying... %3.0f%%", fraction * 100);
    std::fflush(stderr);
  };
}

int run_at(const AtOptions& options) {
  try {
    const PositionSpec spec = PositionSpec::parse(options.position);
    TravelOptions travel;
    travel.key = options.recording.key();
    travel.force = options.force;
    travel.progress = terminal_progress();
    travel.warn = [](const std::string& problem) {
      std::fprintf(stderr, "rr-analyze: warning: %s\n", problem.c_str());
    };
    TimeTraveler traveler(options.recording.recording, travel);
    const librr::RecordingDir dir = librr::RecordingDir::open(options.recording.recording);
    seek_to(traveler, spec, dir.log_path(), travel.key);
    if (travel.progress) std::fprintf(stderr, "\r\033[K");
    switch (options.view) {
      case View::kRegs:
        return show_regs(traveler, options.recording.json);
      case View::kMem:
        return show_mem(traveler,
                        {parse_number(options.mem_address, "address"),
                         parse_number(options.mem_length, "length"), options.physical},
                        options.recording.json);
      case View::kDisasm: {
        DisasmView view;
        if (!options.disasm_args.empty())
          view.address = parse_number(options.disasm_args[0], "address");
        if (options.disasm_args.size() > 1)
          view.count = parse_number(options.disasm_args[1], "count");
        view.symbols_elf = options.symbols;
        return show_disasm(traveler, view, options.recording.json);
      }
    }
  } catch (...) {
    return report_travel_error(std::current_exception());
  }
  return kExitOk;
}

}  // namespace

void add_at_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<AtOptions>();
  CLI::App* at = app.add_subcommand(
      "at", "replay to a position and show the machine there: registers, memory, disassembly");
  at->footer(std::string("Positions (POS):\n") + kPositionSyntaxHelp +
             "Exit codes: 0 ok, 1 recording damaged or replay diverged, 2 usage (bad position, "
             "past the end).");
  options->recording.add_to(*at);
  at->add_option("position", options->position, "where to look (see Positions below)")->required();
  at->add_flag("--force", options->force, "replay even on another CPU or device-model version");
  at->require_subcommand(1);

  CLI::App* regs =
      at->add_subcommand("regs", "general registers, rip, rflags, segments, cr0/3/4, efer");
  CLI::App* mem = at->add_subcommand("mem", "hex dump of guest memory (virtual through CR3)");
  mem->add_option("address", options->mem_address, "start address")->required();
  mem->add_option("length", options->mem_length, "number of bytes")->required();
  mem->add_flag("--phys", options->physical, "ADDR is guest-physical");
  CLI::App* disasm = at->add_subcommand("disasm", "disassemble (Intel syntax), default at rip");
  disasm->add_option("args", options->disasm_args, "[ADDR] [N]: start address, instructions (10)")
      ->expected(0, 2);
  disasm->add_option("--symbols", options->symbols, "ELF file whose symbols name addresses")
      ->check(CLI::ExistingFile);
  for (CLI::App* view : {regs, mem, disasm}) view->fallthrough();  // --json, --key after the view

  regs->callback([options] { options->view = View::kRegs; });
  mem->callback([options] { options->view = View::kMem; });
  disasm->callback([options] { options->view = View::kDisasm; });
  at->callback([options, &action] { action = [options] { return run_at(*options); }; });
}

}  // namespace analyzer
