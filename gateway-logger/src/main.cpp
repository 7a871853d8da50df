#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"rr-gateway: log traffic entering the LAN"};
  CLI11_PARSE(app, argc, argv);
  return 2;
}
