// Recording manifest JSON and host CPU identity.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "librr/error.h"
#include "librr/host_identity.h"
#include "librr/manifest.h"
#include "librr/version.h"

using librr::Manifest;

namespace {

Manifest sample_manifest() {
  Manifest m;
  m.tools.vmm_name = "rr-vmm";
  m.tools.vmm_version = "0.3.1";
  m.tools.vmm_build_id = "abc123";
  m.tools.device_model_version = "7";
  m.tools.replay_rules_version = "2";
  m.host = librr::current_host_identity();
  m.guest = {
      {"memory_bytes", "268435456"}, {"kernel", "/boot/vmlinuz"}, {"cmdline", "console=ttyS0"}};
  m.created_utc = "2026-11-25T22:45:52Z";
  m.snapshot_digest = std::string(64, 'a');
  m.checkpoints.push_back({"checkpoints/000001.rrsnap", 12345, std::string(64, 'b'), "{}"});
  return m;
}

// The format_version this librr writes, quoted as in the JSON.
std::string current_version() {
  return "\"" + std::to_string(librr::kManifestFormatMajor) + "." +
         std::to_string(librr::kManifestFormatMinor) + "\"";
}

std::string expect_format_error(const std::string& json) {
  try {
    Manifest::from_json_string(json);
  } catch (const librr::FormatError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << json;
  return {};
}

}  // namespace

TEST(Manifest, RoundTripsAllFields) {
  const Manifest m = sample_manifest();
  const Manifest back = Manifest::from_json_string(m.to_json_string());
  EXPECT_EQ(back.format_major, librr::kManifestFormatMajor);
  EXPECT_EQ(back.tools.librr, librr::library_version());
  EXPECT_EQ(back.tools.vmm_name, "rr-vmm");
  EXPECT_EQ(back.tools.vmm_build_id, "abc123");
  EXPECT_EQ(back.tools.device_model_version, "7");
  EXPECT_EQ(back.tools.replay_rules_version, "2");
  EXPECT_TRUE(back.host.same_cpu(m.host));
  EXPECT_EQ(back.guest, m.guest);
  EXPECT_EQ(back.created_utc, m.created_utc);
  EXPECT_EQ(back.snapshot_file, "snapshot.rrsnap");
  EXPECT_EQ(back.snapshot_digest, m.snapshot_digest);
  EXPECT_EQ(back.log_file, "events.rrlog");
  ASSERT_EQ(back.checkpoints.size(), 1u);
  EXPECT_EQ(back.checkpoints[0].record_index, 12345u);
  EXPECT_EQ(back.checkpoints[0].file, "checkpoints/000001.rrsnap");
  EXPECT_EQ(back.to_json_string(), m.to_json_string());
}

// Manifests from before replay rules were versioned (format 1.0) read as
// rules "" (the VMM's first), and a manifest without them does not invent one.
TEST(Manifest, ReplayRulesVersionIsOptional) {
  Manifest m = sample_manifest();
  m.tools.replay_rules_version.clear();
  const std::string json = m.to_json_string();
  EXPECT_EQ(json.find("replay_rules_version"), std::string::npos) << json;
  EXPECT_EQ(Manifest::from_json_string(json).tools.replay_rules_version, "");
}

TEST(Manifest, PreservesUnknownFieldsAtEveryLevel) {
  std::string json = sample_manifest().to_json_string();
  // A newer minor version with fields this librr does not know.
  json.replace(json.find(current_version()), current_version().size(), "\"1.7\"");
  json.insert(json.rfind('}'), ",\n  \"future_top\": {\"nested\": [1, 2, 3]}\n");
  json.insert(json.find("\"librr\""), "\"future_tool\": \"x\", ");
  json.insert(json.find("\"vendor\""), "\"microcode\": \"0xde\", ");
  json.insert(json.find("\"record_index\""), "\"position\": {\"rip\": 4096}, ");

  Manifest m = Manifest::from_json_string(json);
  EXPECT_EQ(m.format_minor, 7u);
  m.guest["name"] = "edited by an older tool";
  const std::string rewritten = m.to_json_string();
  for (const char* kept : {"\"future_top\"", "\"nested\"", "\"future_tool\"", "\"microcode\"",
                           "\"position\"", "\"rip\": 4096"})
    EXPECT_NE(rewritten.find(kept), std::string::npos) << kept << " lost:\n" << rewritten;
  EXPECT_NE(rewritten.find("edited by an older tool"), std::string::npos);
  // And a second round trip is stable.
  EXPECT_EQ(Manifest::from_json_string(rewritten).to_json_string(), rewritten);
}

TEST(Manifest, RefusesNewerMajorVersion) {
  std::string json = sample_manifest().to_json_string();
  json.replace(json.find(current_version()), current_version().size(), "\"2.0\"");
  std::string message = expect_format_error(json);
  EXPECT_NE(message.find("2.0 is newer than this librr supports"), std::string::npos) << message;
  EXPECT_NE(message.find("upgrade librr"), std::string::npos) << message;
}

TEST(Manifest, ReportsMalformedInputWithFieldNames) {
  const std::string good = sample_manifest().to_json_string();
  EXPECT_NE(expect_format_error("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(expect_format_error("[]").find("expected an object"), std::string::npos);

  std::string missing = good;
  missing.replace(missing.find("\"log_file\""), 10, "\"log_fiel\"");
  EXPECT_NE(expect_format_error(missing).find("'log_file': missing"), std::string::npos);

  std::string mistyped = good;
  mistyped.replace(mistyped.find("\"family\": "), 10, "\"family\": \"six\", \"x\": ");
  EXPECT_NE(expect_format_error(mistyped).find("'host.family'"), std::string::npos);

  std::string bad_version = good;
  bad_version.replace(bad_version.find(current_version()), current_version().size(), "\"one\"");
  EXPECT_NE(expect_format_error(bad_version).find("MAJOR.MINOR"), std::string::npos);

  std::string escaping = good;
  escaping.replace(escaping.find("\"events.rrlog\""), 14, "\"../../etc/passwd\"");
  EXPECT_NE(expect_format_error(escaping).find("not a plain file name"), std::string::npos);

  std::string absolute = good;
  absolute.replace(absolute.find("\"checkpoints/000001.rrsnap\""), 27, "\"/dev/zero\"");
  EXPECT_NE(expect_format_error(absolute).find("checkpoints[0].file"), std::string::npos);
}

TEST(Manifest, UtcTimeIsIso8601) {
  EXPECT_TRUE(
      std::regex_match(librr::utc_now_iso8601(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
}

TEST(HostIdentity, MatchesProcCpuinfo) {
  const librr::HostIdentity id = librr::current_host_identity();
  EXPECT_FALSE(id.vendor.empty());
  EXPECT_TRUE(std::regex_match(id.feature_flags_digest, std::regex("[0-9a-f]{64}")))
      << id.feature_flags_digest;
  EXPECT_TRUE(id.same_cpu(librr::current_host_identity()));
  EXPECT_TRUE(librr::describe_host_differences(id, id).empty());

  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "/proc/cpuinfo is not readable here";
  std::string cpuinfo((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto field = [&](const std::string& key) {
    std::smatch m;
    std::regex re("(^|\n)" + key + "\\s*: ([^\n]*)");
    return std::regex_search(cpuinfo, m, re) ? m[2].str() : std::string();
  };
  if (field("vendor_id").empty()) GTEST_SKIP() << "/proc/cpuinfo has no x86 fields";
  EXPECT_EQ(id.vendor, field("vendor_id"));
  EXPECT_EQ(std::to_string(id.family), field("cpu family"));
  EXPECT_EQ(std::to_string(id.model), field("model"));
  EXPECT_EQ(std::to_string(id.stepping), field("stepping"));
}

TEST(HostIdentity, DescribesDifferences) {
  librr::HostIdentity a = librr::current_host_identity();
  librr::HostIdentity b = a;
  b.vendor = "AuthenticAMD-test";
  b.model = a.model + 1;
  auto diffs = librr::describe_host_differences(a, b);
  ASSERT_EQ(diffs.size(), 2u);
  EXPECT_NE(diffs[0].find("vendor: " + a.vendor + " (recorded) vs AuthenticAMD-test"),
            std::string::npos)
      << diffs[0];
  EXPECT_FALSE(a.same_cpu(b));
}
