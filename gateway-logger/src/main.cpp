// rr-gateway: logs every frame entering the LAN at its edge (see docs/gateway.md).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "config.h"
#include "gateway_daemon.h"

int main(int argc, char** argv) {
  CLI::App app{
      "rr-gateway: log the traffic entering the LAN (Cooperative ReVirt gateway).\n"
      "Captures on the given interfaces (AF_PACKET, TPACKET_V3 ring), classifies each frame as\n"
      "incoming / outgoing / internal / external from the LAN prefixes and interface roles, and\n"
      "writes frames entering the LAN to zstd-compressed pcapng segments (seg-NNNNNN.pcapng.zst)\n"
      "with a SQLite index (index.sqlite). Runs in the foreground and logs to stderr.\n"
      "Signals: SIGTERM/SIGINT close the segment and exit 0; SIGHUP closes the segment, re-reads\n"
      "the config file and opens a new one. Exit 3 if a write fails (disk full): the error and "
      "the\n"
      "number of frames that could not be written go to stderr and to OUT/LOGGING-STOPPED.\n"
      "Flags override the config file; list flags replace the file's list."};
  std::string config_file;
  gateway::ConfigValues flags;
  app.add_option("--config", config_file,
                 "key = value config file (keys as the long flags with '_' for '-'; lists may be "
                 "repeated or comma-separated; '#' comments)")
      ->check(CLI::ExistingFile);
  app.add_option("--capture-if", flags.capture_if,
                 "interface to capture; must also be named by --lan-if or --wan-if (which capture "
                 "by themselves)");
  app.add_option("--lan-if", flags.lan_if,
                 "LAN-side interface: frames the gateway transmits here enter the LAN and are "
                 "logged");
  app.add_option("--wan-if", flags.wan_if,
                 "WAN-side interface: classified and counted; logged only if no --lan-if is "
                 "captured");
  app.add_option("--lan-prefix", flags.lan_prefix,
                 "CIDR prefix of LAN addresses (IPv4 or IPv6), e.g. 10.1.0.0/16 fd00::/64");
  app.add_option("--out", flags.out, "directory for segments, index.sqlite and markers");
  app.add_option("--segment-size", flags.segment_size,
                 "rotate when a segment's pcapng (before compression) reaches this size; K/M/G "
                 "suffixes (default 64M)");
  app.add_option("--segment-seconds", flags.segment_seconds,
                 "rotate segments after this many seconds; 0 = size only (default 3600)");
  app.add_option("--compression-level", flags.compression_level, "zstd level 1-19 (default 3)");
  app.add_option("--flush-ms", flags.flush_ms,
                 "write buffered frames and index rows at least this often (default 200)");
  app.add_option("--registry", flags.registry,
                 "JSON registry of cooperating hosts and keys (schemas/gateway-protocol.md)");
  app.add_option("--announce-port", flags.announce_port,
                 "UDP port receiving cooperating hosts' frame announcements (0 = off)");
  app.add_option("--announce-publish", flags.announce_publish,
                 "address:port to which the gateway publishes digests of logged frames");
  app.add_option("--ring-block-size", flags.ring_block_size,
                 "TPACKET_V3 ring block size, power of two (default 1M)");
  app.add_option("--ring-block-count", flags.ring_block_count, "ring blocks (default 64)");
  app.add_option("--ring-block-timeout-ms", flags.ring_block_timeout_ms,
                 "the kernel hands over a partly filled block after this (default 20)");
  app.add_option("--snaplen", flags.snaplen, "bytes kept per frame (default 65535)");
  CLI11_PARSE(app, argc, argv);

  auto load = [config_file, flags] {
    gateway::ConfigValues values;
    if (!config_file.empty()) values = gateway::read_config_file(config_file);
    return gateway::resolve(gateway::merge(std::move(values), flags));
  };
  std::setvbuf(stderr, nullptr, _IOLBF, 0);
  gateway::GatewayDaemon daemon(load);
  return daemon.run();
}
