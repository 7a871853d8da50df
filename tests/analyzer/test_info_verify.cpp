// rr-analyze info/verify on real recordings written with librr, checked
// through the real binary: exit codes, JSON, and the first problem reported.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "librr/log.h"
#include "librr/recording.h"
#include "librr/snapshot.h"

namespace fs = std::filesystem;

namespace {

struct CommandResult {
  int exit_code;
  std::string output;
};

CommandResult run(const std::string& args) {
  const std::string command = std::string(RR_BINARY_DIR) + "/bin/rr-analyze " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/rr-analyze-test-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A small but complete recording: snapshot with a blob and sparse memory, a
// multi-chunk log of every record type ending in EndOfRecording.
fs::path make_recording(const fs::path& where, const std::optional<librr::Key>& key = {}) {
  librr::RecordingDir dir = librr::RecordingDir::create(where);
  std::vector<uint8_t> memory(1 << 20, 0);
  for (size_t i = 0; i < memory.size(); i += 8192) memory[i] = static_cast<uint8_t>(i >> 13);
  librr::SnapshotWriter snapshot(dir.snapshot_path());
  std::vector<uint8_t> vcpu(512, 0x5a);
  snapshot.add_blob("vcpu0", 1, vcpu);
  snapshot.add_memory("ram", 0, memory.data(), memory.size());
  dir.manifest().snapshot_digest = librr::to_hex(snapshot.finish());
  dir.manifest().tools.vmm_name = "test";
  dir.manifest().guest["name"] = "synthetic";
  dir.write_manifest();

  librr::LogWriterOptions options;
  options.key = key;
  options.chunk_bytes = 256;  // many chunks
  librr::LogWriter log(dir.log_path(), options);
  for (uint64_t landmark = 1; landmark <= 200; ++landmark) {
    librr::Position pos{landmark, 0, 0};
    log.append(librr::InterruptDelivery{pos, 0x20, 0});
    if (landmark % 10 == 0) log.append(librr::Input{pos, "serial0", {'a', 'b'}});
    if (landmark % 50 == 0) log.append(librr::StateDigest{pos, {}, {}, std::nullopt});
    if (landmark % 40 == 0)
      log.append(librr::AsyncPosition{{landmark, 1, 0}, 1, vcpu, librr::MemoryDigest{}});
  }
  log.append(librr::EndOfRecording{{201, 0, 0}, "exit port", 0});
  log.close();
  return where;
}

}  // namespace

TEST(AnalyzerInfo, SummarizesARecording) {
  TempDir tmp;
  fs::path rec = make_recording(tmp.path() / "rec");
  CommandResult r = run("info --json " + rec.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["log"]["records_by_type"]["InterruptDelivery"], 200);
  EXPECT_EQ(j["log"]["records_by_type"]["Input"], 20);
  EXPECT_EQ(j["log"]["records_by_type"]["AsyncPosition"], 5);
  EXPECT_EQ(j["log"]["records_by_type"]["EndOfRecording"], 1);
  EXPECT_GT(j["log"]["chunks"].get<int>(), 5);
  EXPECT_EQ(j["log"]["positions"]["duration_landmarks"], 201);
  EXPECT_EQ(j["manifest"]["guest"]["name"], "synthetic");
  EXPECT_TRUE(j["intact"].get<bool>());

  CommandResult text = run("info " + rec.string());
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("201 landmarks"), std::string::npos) << text.output;
}

TEST(AnalyzerVerify, IntactRecordingExitsZero) {
  TempDir tmp;
  fs::path rec = make_recording(tmp.path() / "rec");
  CommandResult r = run("verify " + rec.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("intact"), std::string::npos);
}

TEST(AnalyzerVerify, CorruptedLogByteReportsChunkOffsetAndKind) {
  TempDir tmp;
  fs::path rec = make_recording(tmp.path() / "rec");
  librr::RecordingDir dir = librr::RecordingDir::open(rec);
  const auto size = fs::file_size(dir.log_path());
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 20; ++trial) {
    fs::path copy = tmp.path() / ("copy" + std::to_string(trial));
    fs::copy(rec, copy, fs::copy_options::recursive);
    fs::path log = copy / dir.manifest().log_file;
    fs::remove(librr::index_path_for(log));
    const uint64_t offset = rng() % size;
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(offset);
    char byte = static_cast<char>(f.get());
    f.seekp(offset);
    f.put(static_cast<char>(byte ^ (1 + rng() % 255)));
    f.close();
    CommandResult r = run("verify --json " + copy.string());
    ASSERT_EQ(r.exit_code, 1) << "offset " << offset << ": " << r.output;
    auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
    EXPECT_EQ(j["problem"]["component"], "log");
    EXPECT_LE(j["problem"]["offset"].get<int64_t>(), static_cast<int64_t>(offset));
    EXPECT_FALSE(j["problem"]["kind"].get<std::string>().empty());
  }
}

TEST(AnalyzerVerify, ReplacedSnapshotIsCaught) {
  TempDir tmp;
  fs::path rec = make_recording(tmp.path() / "rec");
  fs::path other = make_recording(tmp.path() / "other");
  // A valid snapshot, but not the one the manifest names.
  librr::RecordingDir dir = librr::RecordingDir::open(rec);
  {
    fs::remove(dir.snapshot_path());
    librr::SnapshotWriter snapshot(dir.snapshot_path());
    std::vector<uint8_t> blob(16, 1);
    snapshot.add_blob("vcpu0", 1, blob);
    snapshot.finish();
  }
  CommandResult r = run("verify --json " + rec.string());
  ASSERT_EQ(r.exit_code, 1) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["problem"]["component"], "snapshot");
  EXPECT_EQ(j["problem"]["kind"], "digest_mismatch");
}

TEST(AnalyzerVerify, MacKeyIsCheckedAndWrongKeyIsAUsageError) {
  TempDir tmp;
  librr::Key key = librr::Key::generate();
  key.save_file(tmp.path() / "good.key");
  librr::Key::generate().save_file(tmp.path() / "wrong.key");
  fs::path rec = make_recording(tmp.path() / "rec", key);

  CommandResult good = run("verify --json --key " + (tmp.path() / "good.key").string() + " " +
                           rec.string());
  ASSERT_EQ(good.exit_code, 0) << good.output;
  EXPECT_TRUE(nlohmann::json::parse(good.output)["mac_checked"].get<bool>());

  CommandResult wrong =
      run("verify --key " + (tmp.path() / "wrong.key").string() + " " + rec.string());
  EXPECT_EQ(wrong.exit_code, 2) << wrong.output;
  EXPECT_NE(wrong.output.find("key"), std::string::npos) << wrong.output;
}

TEST(AnalyzerVerify, UsageErrorsExitTwo) {
  EXPECT_EQ(run("verify /nonexistent/recording").exit_code, 2);
  EXPECT_EQ(run("verify").exit_code, 2);
  EXPECT_EQ(run("no-such-command").exit_code, 2);
}
