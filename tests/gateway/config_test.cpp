// Config file parsing, CLI overrides, validation.
#include "config.h"

#include <gtest/gtest.h>

#include "librr/error.h"

using namespace gateway;

TEST(Config, ParsesFileAndFlagsOverride) {
  auto file = parse_config_text(R"(
# rr-gateway test config
lan_if = lan0
wan_if = wan0, wan1
lan_prefix = 10.0.0.0/8
lan_prefix = fd00::/8   # repeated keys accumulate
out = "/var/log/rr"
segment_size = 16M
segment_seconds = 600
)",
                                "test.conf");
  auto config = resolve(file);
  ASSERT_EQ(config.interfaces.size(), 3u);
  EXPECT_EQ(config.interfaces[0].name, "lan0");
  EXPECT_EQ(config.interfaces[0].role, InterfaceRole::kLan);
  EXPECT_EQ(config.interfaces[2].role, InterfaceRole::kWan);
  EXPECT_EQ(config.lan_prefixes.size(), 2u);
  EXPECT_EQ(config.out_dir, "/var/log/rr");
  EXPECT_EQ(config.segment_size, 16u << 20);
  EXPECT_EQ(config.segment_seconds, 600u);

  ConfigValues flags;
  flags.segment_size = "4K";
  flags.lan_prefix = {"192.168.0.0/16"};
  auto merged = resolve(merge(file, flags));
  EXPECT_EQ(merged.segment_size, 4096u);
  ASSERT_EQ(merged.lan_prefixes.size(), 1u);
  EXPECT_EQ(merged.lan_prefixes[0], "192.168.0.0/16");
}

TEST(Config, ErrorsNameTheProblem) {
  try {
    parse_config_text("lan_if = x\nbogus = 1\n", "gw.conf");
    FAIL();
  } catch (const librr::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("gw.conf:2: unknown key 'bogus'"), std::string::npos);
  }
  EXPECT_THROW(parse_config_text("no equals sign\n", "x"), librr::FormatError);
  auto base = parse_config_text("lan_if = lan0\nlan_prefix = 10.0.0.0/8\nout = /tmp/x\n", "x");
  EXPECT_NO_THROW(resolve(base));
  auto bad = base;
  bad.capture_if = {"eth9"};
  EXPECT_THROW(resolve(bad), librr::FormatError) << "capture interface without a role";
  bad = base;
  bad.wan_if = {"lan0"};
  EXPECT_THROW(resolve(bad), librr::FormatError) << "both roles";
  bad = base;
  bad.lan_prefix = {"10.0.0.0/40"};
  EXPECT_THROW(resolve(bad), librr::FormatError);
  bad = base;
  bad.segment_size = "12Q";
  EXPECT_THROW(resolve(bad), librr::FormatError);
  bad = base;
  bad.ring_block_size = "5000";
  EXPECT_THROW(resolve(bad), librr::FormatError) << "not a power of two";
  bad = base;
  bad.out.clear();
  EXPECT_THROW(resolve(bad), librr::FormatError);
}
