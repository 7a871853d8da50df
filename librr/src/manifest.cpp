#include "librr/manifest.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "librr/error.h"
#include "librr/version.h"

namespace librr {
namespace {

using nlohmann::json;

// Reads the known fields of one JSON object and keeps the rest, so that
// unknown fields survive a read-modify-write cycle.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string context, std::string_view source)
      : rest_(object), context_(std::move(context)), source_(source) {
    if (!object.is_object()) throw error("", "expected an object");
  }

  template <class T>
  T required(const std::string& key) {
    auto it = rest_.find(key);
    if (it == rest_.end()) throw error(key, "missing");
    return take<T>(key, it);
  }
  template <class T>
  T optional(const std::string& key, T fallback) {
    auto it = rest_.find(key);
    return it == rest_.end() ? fallback : take<T>(key, it);
  }
  json object(const std::string& key) {
    auto it = rest_.find(key);
    if (it == rest_.end()) throw error(key, "missing");
    json value = *it;
    rest_.erase(it);
    return value;
  }
  std::string extra() const { return rest_.dump(); }
  FormatError error(const std::string& key, const std::string& what) const {
    std::string field = key.empty() ? context_ : context_.empty() ? key : context_ + "." + key;
    return FormatError(std::string(source_) + ": field '" + (field.empty() ? "(root)" : field) +
                       "': " + what);
  }

 private:
  template <class T>
  T take(const std::string& key, json::iterator it) {
    T value;
    if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) throw error(key, "expected a string, found " + it->dump());
      value = it->get<std::string>();
    } else {
      if (!it->is_number_unsigned()) throw error(key, "expected an unsigned integer");
      value = it->get<T>();
    }
    rest_.erase(it);
    return value;
  }
  json rest_;
  std::string context_;
  std::string_view source_;
};

// Unknown fields first, then the known ones (which win on a name clash).
json with_extra(const std::string& extra_json, json known) {
  json out = json::parse(extra_json.empty() ? "{}" : extra_json, nullptr, false);
  if (!out.is_object()) out = json::object();
  for (auto& [key, value] : known.items()) out[key] = value;
  return out;
}

// Manifests name files inside the recording; a hostile one must not point
// outside it ("../../etc/passwd", "/dev/zero").
void check_relative_file(const ObjectReader& reader, const std::string& key,
                         const std::string& file) {
  if (file.empty() || file.front() == '/' || file.find("..") != std::string::npos ||
      file.find('\0') != std::string::npos)
    throw reader.error(key, "'" + file + "' is not a plain file name inside the recording");
}

void parse_version(const std::string& text, ObjectReader& reader, uint32_t& major,
                   uint32_t& minor) {
  unsigned long a = 0, b = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%lu.%lu%n", &a, &b, &consumed) != 2 ||
      consumed != static_cast<int>(text.size()) || a > 1000000 || b > 1000000)
    throw reader.error("format_version", "expected \"MAJOR.MINOR\", found \"" + text + "\"");
  major = static_cast<uint32_t>(a);
  minor = static_cast<uint32_t>(b);
}

}  // namespace

std::string Manifest::to_json_string() const {
  json j_tools =
      with_extra(tools.extra_json, {{"librr", tools.librr},
                                    {"vmm_name", tools.vmm_name},
                                    {"vmm_version", tools.vmm_version},
                                    {"vmm_build_id", tools.vmm_build_id},
                                    {"device_model_version", tools.device_model_version}});
  if (!tools.replay_rules_version.empty())
    j_tools["replay_rules_version"] = tools.replay_rules_version;
  json j_host = with_extra(host.extra_json, {{"vendor", host.vendor},
                                             {"family", host.family},
                                             {"model", host.model},
                                             {"stepping", host.stepping},
                                             {"model_name", host.model_name},
                                             {"feature_flags_digest", host.feature_flags_digest}});
  json j_checkpoints = json::array();
  for (const auto& c : checkpoints)
    j_checkpoints.push_back(with_extra(c.extra_json, {{"file", c.file},
                                                      {"record_index", c.record_index},
                                                      {"snapshot_digest", c.snapshot_digest}}));
  json root = with_extra(extra_json, {{"format_version", std::to_string(format_major) + "." +
                                                             std::to_string(format_minor)},
                                      {"tools", j_tools},
                                      {"host", j_host},
                                      {"guest", guest},
                                      {"created_utc", created_utc},
                                      {"snapshot_file", snapshot_file},
                                      {"snapshot_digest", snapshot_digest},
                                      {"snapshot_key_fingerprint", snapshot_key_fingerprint},
                                      {"log_file", log_file},
                                      {"checkpoints", j_checkpoints}});
  return root.dump(2) + "\n";
}

Manifest Manifest::from_json_string(std::string_view text, std::string_view source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw FormatError(std::string(source) + ": not valid JSON: " + e.what(),
                      static_cast<int64_t>(e.byte));
  }
  Manifest m;
  ObjectReader top(root, "", source);
  parse_version(top.required<std::string>("format_version"), top, m.format_major, m.format_minor);
  if (m.format_major > kManifestFormatMajor)
    throw FormatError(std::string(source) + ": manifest format version " +
                      std::to_string(m.format_major) + "." + std::to_string(m.format_minor) +
                      " is newer than this librr supports (" +
                      std::to_string(kManifestFormatMajor) + ".x); upgrade librr to read it");
  if (m.format_major < 1) throw top.error("format_version", "version 0 does not exist");

  ObjectReader tools(top.object("tools"), "tools", source);
  m.tools.librr = tools.required<std::string>("librr");
  m.tools.vmm_name = tools.optional<std::string>("vmm_name", "");
  m.tools.vmm_version = tools.optional<std::string>("vmm_version", "");
  m.tools.vmm_build_id = tools.optional<std::string>("vmm_build_id", "");
  m.tools.device_model_version = tools.optional<std::string>("device_model_version", "");
  m.tools.replay_rules_version = tools.optional<std::string>("replay_rules_version", "");
  m.tools.extra_json = tools.extra();

  ObjectReader host(top.object("host"), "host", source);
  m.host.vendor = host.required<std::string>("vendor");
  m.host.family = host.required<uint32_t>("family");
  m.host.model = host.required<uint32_t>("model");
  m.host.stepping = host.required<uint32_t>("stepping");
  m.host.model_name = host.optional<std::string>("model_name", "");
  m.host.feature_flags_digest = host.optional<std::string>("feature_flags_digest", "");
  m.host.extra_json = host.extra();

  json guest = top.object("guest");
  if (!guest.is_object()) throw top.error("guest", "expected an object");
  for (auto& [key, value] : guest.items()) {
    if (!value.is_string()) throw top.error("guest." + key, "expected a string");
    m.guest[key] = value.get<std::string>();
  }

  m.created_utc = top.required<std::string>("created_utc");
  m.snapshot_file = top.required<std::string>("snapshot_file");
  check_relative_file(top, "snapshot_file", m.snapshot_file);
  m.snapshot_digest = top.required<std::string>("snapshot_digest");
  m.snapshot_key_fingerprint = top.optional<std::string>("snapshot_key_fingerprint", "");
  m.log_file = top.required<std::string>("log_file");
  check_relative_file(top, "log_file", m.log_file);

  json checkpoints = top.object("checkpoints");
  if (!checkpoints.is_array()) throw top.error("checkpoints", "expected an array");
  for (size_t i = 0; i < checkpoints.size(); ++i) {
    ObjectReader c(checkpoints[i], "checkpoints[" + std::to_string(i) + "]", source);
    Checkpoint cp;
    cp.file = c.required<std::string>("file");
    check_relative_file(c, "file", cp.file);
    cp.record_index = c.required<uint64_t>("record_index");
    cp.snapshot_digest = c.required<std::string>("snapshot_digest");
    cp.extra_json = c.extra();
    m.checkpoints.push_back(std::move(cp));
  }
  m.extra_json = top.extra();
  return m;
}

std::string utc_now_iso8601() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

}  // namespace librr
