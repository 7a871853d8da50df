// Recording directories: create, open, refuse to overwrite, name what is
// missing, write the manifest atomically, and catch a replaced snapshot.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>

#include "librr/error.h"
#include "librr/recording.h"
#include "librr/snapshot.h"

namespace fs = std::filesystem;
using librr::RecordingDir;

namespace {

class RecordingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "rrrec-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    base_ = templ;
  }
  void TearDown() override { fs::remove_all(base_); }

  // A complete recording with a real snapshot, a placeholder log file (the
  // log format is not this test's subject) and one checkpoint.
  RecordingDir make_recording(const fs::path& path, const std::optional<librr::Key>& key = {}) {
    RecordingDir rec = RecordingDir::create(path);
    std::vector<uint8_t> ram(64 * 4096, 0);
    ram[5 * 4096] = 1;
    librr::SnapshotWriter writer(rec.snapshot_path(), {.key = key});
    writer.add_blob("vcpu0", 1, std::vector<uint8_t>(100, 7));
    writer.add_memory("ram", 0, ram.data(), ram.size());
    rec.manifest().snapshot_digest = librr::to_hex(writer.finish());
    if (key) rec.manifest().snapshot_key_fingerprint = key->fingerprint();
    std::ofstream(rec.log_path()) << "log";
    librr::SnapshotWriter cp_writer(rec.new_checkpoint_path(1), {.key = key});
    cp_writer.add_blob("vcpu0", 1, std::vector<uint8_t>(100, 8));
    rec.manifest().checkpoints.push_back({fs::relative(rec.new_checkpoint_path(1), path).string(),
                                          42, librr::to_hex(cp_writer.finish()), "{}"});
    rec.manifest().guest["name"] = "test-guest";
    rec.write_manifest();
    return rec;
  }

  static std::string open_error(const fs::path& path) {
    try {
      RecordingDir::open(path);
    } catch (const librr::Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "opened " << path;
    return {};
  }

  fs::path base_;
};

}  // namespace

TEST_F(RecordingTest, CreateThenOpenGivesTheSameManifestAndPaths) {
  const fs::path path = base_ / "nested" / "rec1";
  RecordingDir created = make_recording(path);
  EXPECT_TRUE(fs::is_directory(created.checkpoints_dir()));
  EXPECT_FALSE(fs::exists(path / "manifest.json.tmp"));

  RecordingDir opened = RecordingDir::open(path);
  EXPECT_EQ(opened.root(), path);
  EXPECT_EQ(opened.manifest_path(), path / "manifest.json");
  EXPECT_EQ(opened.snapshot_path(), path / "snapshot.rrsnap");
  EXPECT_EQ(opened.log_path(), path / "events.rrlog");
  EXPECT_EQ(opened.log_index_path(), path / "events.rrlog.idx");
  EXPECT_EQ(opened.checkpoints_dir(), path / "checkpoints");
  EXPECT_EQ(opened.new_checkpoint_path(1), path / "checkpoints" / "000001.rrsnap");
  EXPECT_EQ(opened.manifest().to_json_string(), created.manifest().to_json_string());
  EXPECT_EQ(opened.manifest().guest.at("name"), "test-guest");
  EXPECT_TRUE(opened.manifest().host.same_cpu(librr::current_host_identity()));
  EXPECT_FALSE(opened.manifest().created_utc.empty());

  auto check = opened.verify_snapshot();
  EXPECT_TRUE(check.ok) << check.message;
  auto checkpoints = opened.verify_checkpoints();
  ASSERT_EQ(checkpoints.size(), 1u);
  EXPECT_TRUE(checkpoints[0].ok) << checkpoints[0].message;
}

TEST_F(RecordingTest, RefusesToOverwrite) {
  const fs::path path = base_ / "rec";
  make_recording(path);
  try {
    RecordingDir::create(path);
    FAIL() << "created a recording over an existing one";
  } catch (const librr::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not empty"), std::string::npos) << e.what();
  }
  // An empty existing directory is fine; a plain file is not.
  fs::create_directory(base_ / "empty");
  EXPECT_NO_THROW(RecordingDir::create(base_ / "empty"));
  std::ofstream(base_ / "file") << "x";
  EXPECT_THROW(RecordingDir::create(base_ / "file"), librr::Error);
}

TEST_F(RecordingTest, OpenNamesWhatIsMissing) {
  EXPECT_NE(open_error(base_ / "nowhere").find("does not exist"), std::string::npos);
  std::ofstream(base_ / "plain") << "x";
  EXPECT_NE(open_error(base_ / "plain").find("not a directory"), std::string::npos);
  fs::create_directory(base_ / "empty");
  EXPECT_NE(open_error(base_ / "empty").find("manifest.json is missing"), std::string::npos);

  const fs::path path = base_ / "rec";
  make_recording(path);
  fs::rename(path / "events.rrlog", base_ / "log.bak");
  EXPECT_NE(open_error(path).find("event log events.rrlog is missing"), std::string::npos);
  fs::rename(base_ / "log.bak", path / "events.rrlog");
  fs::remove(path / "checkpoints" / "000001.rrsnap");
  EXPECT_NE(open_error(path).find("checkpoint checkpoints/000001.rrsnap is missing"),
            std::string::npos);
  fs::remove(path / "snapshot.rrsnap");
  EXPECT_NE(open_error(path).find("initial snapshot snapshot.rrsnap is missing"),
            std::string::npos);

  std::ofstream(path / "manifest.json", std::ios::trunc) << "{\"format_version\": \"9.0\"}";
  EXPECT_THROW(RecordingDir::open(path), librr::FormatError);
}

TEST_F(RecordingTest, ReplacedSnapshotIsReportedAsTampering) {
  const fs::path path = base_ / "rec";
  make_recording(path);
  // A different but perfectly valid snapshot put in place of the original.
  fs::remove(path / "snapshot.rrsnap");
  librr::SnapshotWriter writer(path / "snapshot.rrsnap");
  writer.add_blob("vcpu0", 1, std::vector<uint8_t>(100, 9));
  writer.finish();
  RecordingDir rec = RecordingDir::open(path);
  auto check = rec.verify_snapshot();
  EXPECT_FALSE(check.ok);
  EXPECT_TRUE(check.report.ok) << "the file itself is intact";
  EXPECT_NE(check.message.find("tampered"), std::string::npos) << check.message;
}

TEST_F(RecordingTest, CorruptedSnapshotIsReportedAsDamaged) {
  const fs::path path = base_ / "rec";
  make_recording(path);
  {
    std::fstream f(path / "snapshot.rrsnap", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x77');
  }
  auto check = RecordingDir::open(path).verify_snapshot();
  EXPECT_FALSE(check.ok);
  EXPECT_FALSE(check.report.ok);
  EXPECT_NE(check.message.find("damaged"), std::string::npos) << check.message;
}

TEST_F(RecordingTest, EncryptedRecordingVerifiesWithAndWithoutKey) {
  const fs::path path = base_ / "rec";
  const auto key = librr::Key::generate();
  make_recording(path, key);
  RecordingDir rec = RecordingDir::open(path);
  EXPECT_EQ(rec.manifest().snapshot_key_fingerprint, key.fingerprint());
  auto with_key = rec.verify_snapshot(key);
  EXPECT_TRUE(with_key.ok) << with_key.message;
  EXPECT_TRUE(with_key.report.contents_checked);
  auto without_key = rec.verify_snapshot();
  EXPECT_TRUE(without_key.ok) << without_key.message;  // digest still checkable
  EXPECT_FALSE(without_key.report.contents_checked);
  auto wrong = rec.verify_snapshot(librr::Key::generate());
  EXPECT_FALSE(wrong.ok);
  EXPECT_NE(wrong.message.find("wrong key"), std::string::npos) << wrong.message;
}

TEST_F(RecordingTest, ManifestWriteIsAtomicReplace) {
  const fs::path path = base_ / "rec";
  RecordingDir rec = make_recording(path);
  auto inode = [&] {
    struct stat st {};
    EXPECT_EQ(::stat((path / "manifest.json").c_str(), &st), 0);
    return st.st_ino;
  };
  const auto inode_before = inode();
  rec.manifest().guest["name"] = "renamed";
  // A stale temporary file from a crash does not block the next write.
  std::ofstream(path / "manifest.json.tmp") << "garbage";
  rec.write_manifest();
  EXPECT_FALSE(fs::exists(path / "manifest.json.tmp"));
  // Replaced by rename (a new inode), never rewritten in place.
  EXPECT_NE(inode(), inode_before);
  EXPECT_EQ(RecordingDir::open(path).manifest().guest.at("name"), "renamed");
}
