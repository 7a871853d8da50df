// `rr-analyze profile generate|show`: Volatility 3 ISF profiles from a kernel's DWARF.
#include "profile/profile.h"

#include <fmt/format.h>

#include <chrono>

#include "commands/forensics.h"
#include "profile/isf_generator.h"
#include "profile/profile_store.h"

namespace analyzer {
namespace {

struct ProfileOptions {
  std::string elf;
  std::string out;
  std::string file;
  bool json = false;
};

int generate(const ProfileOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  IsfGenerationStats stats;
  const nlohmann::json isf = generate_isf(options.elf, &stats);
  write_profile(isf, options.out);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr,
             "rr-analyze: wrote {} ({} compile units, {} user types, {} base types, {} enums, {} "
             "symbols) in {:.1f} s\n",
             options.out, stats.compile_units, stats.user_types, stats.base_types, stats.enums,
             stats.symbols, seconds);
  return kExitOk;
}

int show(const ProfileOptions& options) {
  const Profile profile = Profile::load(options.file);
  const auto& doc = profile.document();
  nlohmann::json summary = {{"profile", options.file},
                            {"format", doc["metadata"].value("format", "")},
                            {"os", profile.os()},
                            {"user_types", doc["user_types"].size()},
                            {"base_types", doc["base_types"].size()},
                            {"enums", doc["enums"].size()},
                            {"symbols", doc["symbols"].size()}};
  if (auto banner = profile.linux_banner()) summary["linux_banner"] = *banner;
  if (options.json) {
    fmt::print("{}\n", summary.dump(2));
    return kExitOk;
  }
  for (const auto& [key, value] : summary.items())
    fmt::print("{:<12}{}\n", key, value.is_string() ? value.get<std::string>() : value.dump());
  return kExitOk;
}

}  // namespace

void add_profile_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<ProfileOptions>();
  CLI::App* command =
      app.add_subcommand("profile", "Volatility 3 ISF profiles (JSON) from a kernel's DWARF");
  command->require_subcommand(1);
  CLI::App* gen = command->add_subcommand("generate", "write the ISF profile of a kernel ELF");
  gen->add_option("--elf", options->elf, "kernel ELF with DWARF (vmlinux, test-guest .elf)")
      ->required()
      ->check(CLI::ExistingFile);
  gen->add_option("--out,-o", options->out, "profile file to write (JSON)")->required();
  gen->callback([options, &action] { action = [options] { return generate(*options); }; });
  CLI::App* show_command = command->add_subcommand("show", "summarize an ISF profile");
  show_command->add_option("file", options->file, "ISF JSON file")->required();
  show_command->add_flag("--json", options->json, "machine-readable output");
  show_command->callback([options, &action] { action = [options] { return show(*options); }; });
}

}  // namespace analyzer
