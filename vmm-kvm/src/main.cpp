#include <CLI/CLI.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"rr-vmm: a KVM virtual machine monitor that records and replays whole machines"};
  app.require_subcommand(1);
  app.add_subcommand("run", "boot a guest");
  CLI11_PARSE(app, argc, argv);
  std::fprintf(stderr, "rr-vmm: not implemented yet\n");
  return 2;
}
