// DeferredSync: a recording whose start is synced in the background is
// complete and verifies once wait() returns; a path that cannot be synced is
// reported by wait() with its name, after the rest of the queue was synced.
#include <gtest/gtest.h>

#include <fstream>

#include "librr/deferred_sync.h"
#include "librr/error.h"
#include "librr/recording.h"
#include "librr/snapshot.h"
#include "test_log_util.h"

namespace fs = std::filesystem;

namespace {

class DeferredSyncTest : public ::testing::Test {
 protected:
  // On the disk, not tmpfs: the syncs are the subject.
  logtest::TempDir dir_{/*prefer_tmpfs=*/false};
  const fs::path& base_ = dir_.path();
};

TEST_F(DeferredSyncTest, ARecordingStartedWithDeferredSyncsOpensAndVerifies) {
  librr::DeferredSync durable;
  librr::RecordingDir rec = librr::RecordingDir::create(base_ / "rec");
  std::vector<uint8_t> ram(32 * 4096, 0);
  ram[3 * 4096] = 9;
  librr::SnapshotWriter writer(
      rec.snapshot_path(),
      {.key = std::nullopt, .compression_level = 3, .deferred_sync = &durable});
  writer.add_blob("vcpu0", 1, std::vector<uint8_t>(64, 5));
  writer.add_memory("ram", 0, ram.data(), ram.size());
  rec.manifest().snapshot_digest = librr::to_hex(writer.finish());
  std::ofstream(rec.log_path()) << "log";
  rec.write_manifest(&durable);
  EXPECT_FALSE(fs::exists(rec.manifest_path().string() + ".tmp"));
  durable.wait();

  const librr::RecordingDir opened = librr::RecordingDir::open(base_ / "rec");
  EXPECT_EQ(opened.manifest().snapshot_digest, rec.manifest().snapshot_digest);
  const librr::SnapshotCheck check = opened.verify_snapshot();
  EXPECT_TRUE(check.ok) << check.message;
}

TEST_F(DeferredSyncTest, WaitNamesAPathThatCannotBeSyncedAndStillSyncsTheRest) {
  librr::DeferredSync durable;
  const fs::path missing = base_ / "gone" / "file";
  const fs::path present = base_ / "present";
  std::ofstream(present) << "data";
  durable.add(missing);
  durable.add(present);
  try {
    durable.wait();
    FAIL() << "wait() did not report " << missing;
  } catch (const librr::SystemError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  // Reported once; what follows syncs again.
  durable.add(present);
  EXPECT_NO_THROW(durable.wait());
}

TEST_F(DeferredSyncTest, DestroyingWithAQueuedFailureDoesNotThrow) {
  EXPECT_NO_THROW({
    librr::DeferredSync durable;
    durable.add(base_ / "never-created");
  });
}

}  // namespace
