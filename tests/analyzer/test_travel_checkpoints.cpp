// Checkpoints carry the virtio-blk overlay: disk sectors written after a
// checkpoint read from the base image again once it is restored, and those
// written before it come back. A real recording with a real disk image and
// the real CowDisk; the writes are made on the replay machine's disk
// directly (no test guest has a virtio-blk driver).
#include <array>
#include <fstream>

#include "replay/replay_machine.h"
#include "test_travel_support.h"
#include "travel/checkpoint.h"

namespace {

using namespace travel_test;

class DiscardOutput final : public vmm::SerialOutput {
 public:
  void write(uint8_t) override {}
};

std::array<uint8_t, vmm::block::kSectorBytes> sector_of(vmm::ReplayMachine& replay,
                                                        uint64_t sector) {
  std::array<uint8_t, vmm::block::kSectorBytes> bytes{};
  replay.machine().blk()->disk().read_sectors(sector, bytes);
  return bytes;
}

TEST(TravelCheckpoints, RestoringACheckpointRestoresTheDiskOverlay) {
  SKIP_WITHOUT_KVM();
  const fs::path image = Recordings::get().dir() / "disk.img";
  {
    std::ofstream out(image, std::ios::binary);
    std::vector<char> base(64 * vmm::block::kSectorBytes, 'b');
    out.write(base.data(), static_cast<std::streamsize>(base.size()));
  }
  const fs::path rec =
      Recordings::get().of("ticks-disk", "--guest ticks --append ticks=8 --disk " + image.string());
  DiscardOutput console;
  vmm::ReplayMachineOptions options;
  options.serial_output = &console;
  vmm::ReplayMachine replay(rec, options);
  ASSERT_NE(replay.machine().blk(), nullptr) << "the recording has no disk";

  analyzer::CheckpointStore store;
  store.capture(replay, 0);  // nothing written yet
  std::array<uint8_t, vmm::block::kSectorBytes> written;
  written.fill('1');
  replay.machine().blk()->disk().write_sectors(3, written);
  ASSERT_TRUE(replay.session().advance());
  store.capture(replay, 1);  // sector 3 written
  written.fill('2');
  replay.machine().blk()->disk().write_sectors(3, written);
  replay.machine().blk()->disk().write_sectors(9, written);
  ASSERT_TRUE(replay.session().advance());

  ASSERT_EQ(store.size(), 2u);
  analyzer::CheckpointStore::restore(*store.all()[1], replay);
  EXPECT_EQ(sector_of(replay, 3)[0], '1');
  EXPECT_EQ(sector_of(replay, 9)[0], 'b') << "written after the checkpoint: base again";
  EXPECT_TRUE(replay.machine().blk()->disk().sector_written(3));
  EXPECT_FALSE(replay.machine().blk()->disk().sector_written(9));

  analyzer::CheckpointStore::restore(*store.all()[0], replay);
  EXPECT_EQ(sector_of(replay, 3)[0], 'b');
  EXPECT_EQ(replay.machine().blk()->disk().written_sector_count(), 0u);
  // The replay goes on from the restored checkpoint as before.
  EXPECT_TRUE(replay.session().advance());
}

}  // namespace
