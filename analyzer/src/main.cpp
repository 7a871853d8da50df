#include <CLI/CLI.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"rr-analyze: inspect, verify and query recordings"};
  app.require_subcommand(1);
  app.add_subcommand("info", "summarize a recording");
  CLI11_PARSE(app, argc, argv);
  return 2;
}
