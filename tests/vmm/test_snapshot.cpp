// `rr-vmm run --snapshot-out` / `--restore` / `--clone` through the real
// binary on real KVM guests: a restored machine continues with exactly the
// serial output of the uninterrupted run, clones are identical, snapshots
// can be encrypted, and bad snapshots are refused with exit status 2 and one
// line naming the cause.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "librr/crypto.h"
#include "librr/snapshot.h"
#include "machine/machine.h"
#include "snapshot/machine_snapshot.h"
#include "test_machine_support.h"

namespace fs = std::filesystem;

namespace {

std::string rr_vmm() { return std::string(RR_BINARY_DIR) + "/bin/rr-vmm"; }

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

struct Outcome {
  int status = -1;
  std::string out, err;
};

class SnapshotCli : public ::testing::Test {
 protected:
  void SetUp() override {
    RR_SKIP_WITHOUT_KVM();
    if (!fs::exists(std::string(RR_BINARY_DIR) + "/guests/demo.elf"))
      GTEST_SKIP() << "test guests missing: build test-guests";
    char pattern[] = "/tmp/rr-snapshot-test-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs a shell command line (stdin from /dev/null), capturing its output.
  Outcome shell(const std::string& command_line) {
    const fs::path out = dir_ / "stdout", err = dir_ / "stderr";
    const std::string command = "export RR_GUEST_DIR=" + std::string(RR_BINARY_DIR) + "/guests; (" +
                                command_line + ") >" + out.string() + " 2>" + err.string() +
                                " </dev/null";
    const int status = std::system(command.c_str());
    Outcome outcome;
    outcome.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    outcome.out = read_file(out);
    outcome.err = read_file(err);
    return outcome;
  }
  Outcome vmm(const std::string& args) { return shell(rr_vmm() + " " + args); }

  // The demo guest under the virtual clock, snapshotted right after it
  // printed `text`; returns the full output and leaves the snapshot at `snapshot`.
  std::string demo_with_snapshot(const fs::path& snapshot, const std::string& text,
                                 const std::string& extra = "") {
    const Outcome run =
        vmm("run --guest demo --append work=30 --clock virtual --serial-in none "
            "--snapshot-at 'serial:" +
            text + "' --snapshot-out " + snapshot.string() + " " + extra);
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_NE(run.err.find("snapshot " + snapshot.string() + " written"), std::string::npos)
        << run.err;
    EXPECT_NE(run.out.find("RESULT demo status=0"), std::string::npos) << run.out;
    return run.out;
  }

  static std::string after(const std::string& output, const std::string& text) {
    const size_t at = output.find(text);
    return at == std::string::npos ? "<" + text + " not printed>" : output.substr(at + text.size());
  }

  fs::path dir_;
};

constexpr const char* kDemoTrigger = "sieve round 3/8";

TEST_F(SnapshotCli, DemoRestoredContinuesWithTheUninterruptedOutput) {
  const fs::path snapshot = dir_ / "demo.rrsnap";
  const std::string with_snapshot = demo_with_snapshot(snapshot, kDemoTrigger);
  // Taking a snapshot does not disturb the run, and virtual time repeats.
  const Outcome plain = vmm("run --guest demo --append work=30 --clock virtual --serial-in none");
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, with_snapshot);

  const Outcome restored = vmm("run --restore " + snapshot.string() + " --serial-in none");
  ASSERT_EQ(restored.status, 0) << restored.err;
  EXPECT_EQ(restored.out, after(with_snapshot, kDemoTrigger));
  EXPECT_NE(restored.out.find("RESULT demo status=0"), std::string::npos);

  const Outcome info = vmm("snapshot info " + snapshot.string());
  EXPECT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.out.find("clock: virtual"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("uart0"), std::string::npos) << info.out;
}

TEST_F(SnapshotCli, TicksRestoredAtItsSummaryPrintsTheSameHash) {
  // ticks spins at CPL3 without exits, so it needs --preempt-ms (host-chosen
  // stop points, not repeatable before the snapshot); what follows the
  // snapshot is a function of the snapshot alone.
  const fs::path snapshot = dir_ / "ticks.rrsnap";
  const std::string trigger = "ticks: loops=";
  const Outcome run =
      vmm("run --guest ticks --append ticks=20 --clock virtual --preempt-ms 2 "
          "--serial-in none --snapshot-at 'serial:" +
          trigger + "' --snapshot-out " + snapshot.string());
  ASSERT_EQ(run.status, 0) << run.err;
  ASSERT_NE(run.out.find("ticks hash="), std::string::npos) << run.out;
  const Outcome restored = vmm("run --restore " + snapshot.string() + " --serial-in none");
  ASSERT_EQ(restored.status, 0) << restored.err;
  EXPECT_EQ(restored.out, after(run.out, trigger));
}

TEST_F(SnapshotCli, ThreeClonesPrintTheSameAndExitTheSame) {
  const fs::path snapshot = dir_ / "demo.rrsnap";
  const std::string expected = after(demo_with_snapshot(snapshot, kDemoTrigger), kDemoTrigger);
  const fs::path clones = dir_ / "clones";
  const Outcome run =
      vmm("run --restore " + snapshot.string() + " --clone 3 --serial-out-dir " + clones.string());
  ASSERT_EQ(run.status, 0) << run.err;
  for (int k = 1; k <= 3; ++k) {
    EXPECT_EQ(read_file(clones / ("clone-" + std::to_string(k) + ".serial")), expected)
        << "clone " << k;
    EXPECT_NE(run.err.find("clone " + std::to_string(k) + ": exit status 0"), std::string::npos)
        << run.err;
  }
  // Without a directory the clones share stdout, each line prefixed.
  const Outcome shared = vmm("run --restore " + snapshot.string() + " --clone 2");
  ASSERT_EQ(shared.status, 0) << shared.err;
  for (const std::string prefix : {"[clone 1] RESULT demo status=0", "[clone 2] RESULT demo"})
    EXPECT_NE(shared.out.find(prefix), std::string::npos) << shared.out;
}

TEST_F(SnapshotCli, EncryptedSnapshotAtAGuestTimeNeedsItsKey) {
  const fs::path key = dir_ / "key", snapshot = dir_ / "enc.rrsnap";
  librr::Key::generate().save_file(key);
  const Outcome run =
      vmm("run --guest demo --append work=30 --clock virtual --serial-in none "
          "--snapshot-at time:150ms --snapshot-out " +
          snapshot.string() + " --key " + key.string());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.err.find("written at guest time 1"), std::string::npos) << run.err;

  const Outcome no_key = vmm("run --restore " + snapshot.string());
  EXPECT_EQ(no_key.status, 2);
  EXPECT_NE(no_key.err.find("key"), std::string::npos) << no_key.err;
  EXPECT_EQ(std::count(no_key.err.begin(), no_key.err.end(), '\n'), 1) << no_key.err;

  const Outcome restored =
      vmm("run --restore " + snapshot.string() + " --key " + key.string() + " --serial-in none");
  ASSERT_EQ(restored.status, 0) << restored.err;
  ASSERT_FALSE(restored.out.empty());
  ASSERT_LT(restored.out.size(), run.out.size());
  EXPECT_EQ(run.out.substr(run.out.size() - restored.out.size()), restored.out);
}

TEST_F(SnapshotCli, SigusrSnapshotsAHostClockRunThatThenContinues) {
  const fs::path pattern = dir_ / "live-{n}.rrsnap";
  const Outcome run = shell(rr_vmm() + " run --guest demo --serial-in none --snapshot-out '" +
                            pattern.string() + "' & pid=$!; sleep 0.4; kill -USR1 $pid; wait $pid");
  ASSERT_EQ(run.status, 0) << run.err;
  ASSERT_NE(run.out.find("RESULT demo status=0"), std::string::npos) << run.out;
  const fs::path first = dir_ / "live-1.rrsnap";
  ASSERT_TRUE(fs::exists(first)) << run.err;
  // Host time: the continuation differs in timing, not in the demo's result.
  const Outcome restored = vmm("run --restore " + first.string() + " --serial-in none");
  EXPECT_EQ(restored.status, 0) << restored.err;
  EXPECT_NE(restored.out.find("RESULT demo status=0"), std::string::npos) << restored.out;
}

TEST_F(SnapshotCli, BadSnapshotsExitTwoNamingTheCause) {
  const fs::path good = dir_ / "good.rrsnap";
  demo_with_snapshot(good, kDemoTrigger);
  const std::string bytes = read_file(good);

  auto expect_refused = [&](const fs::path& path, const std::string& cause) {
    const Outcome o = vmm("run --restore " + path.string());
    EXPECT_EQ(o.status, 2) << path;
    EXPECT_NE(o.err.find(cause), std::string::npos) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_TRUE(o.out.empty()) << o.out;
  };
  expect_refused(dir_ / "missing.rrsnap", "no such file");
  write_file(dir_ / "truncated.rrsnap", bytes.substr(0, bytes.size() / 2));
  expect_refused(dir_ / "truncated.rrsnap", "truncated.rrsnap");
  write_file(dir_ / "garbage.rrsnap", std::string(4096, 'x'));
  expect_refused(dir_ / "garbage.rrsnap", "garbage.rrsnap");

  // One flipped byte in the middle of guest RAM's frames.
  const librr::SnapshotReader reader = librr::SnapshotReader::open(good);
  const librr::SectionInfo* ram = reader.find("ram");
  ASSERT_NE(ram, nullptr);
  std::string corrupt = bytes;
  corrupt[ram->file_offset + ram->stored_size / 2] ^= 0x40;
  write_file(dir_ / "corrupt.rrsnap", corrupt);
  expect_refused(dir_ / "corrupt.rrsnap", "section 'ram'");

  // Written by other device models (a machine saved with another version string).
  vmm::MachineConfig config;
  config.ram_bytes = 4 << 20;
  vmm::Machine machine(config);
  vmm::SnapshotConfig other;
  other.device_model_version = "0-older";
  other.ram_bytes = config.ram_bytes;
  other.guest = "none";
  vmm::save_machine_snapshot(machine, dir_ / "other.rrsnap", std::nullopt, &other);
  expect_refused(dir_ / "other.rrsnap", "device models version '0-older'");
}

TEST_F(SnapshotCli, DiskOverlayTravelsInTheSnapshotAndTheBaseMustNotChange) {
  const fs::path image = dir_ / "disk.img", snapshot = dir_ / "disk.rrsnap";
  write_file(image, std::string(64 * 512, 'b'));
  // Machine API: sectors written before the snapshot come back after restore.
  {
    vmm::MachineConfig config;
    config.ram_bytes = 4 << 20;
    config.disk_image = image;
    vmm::Machine machine(config);
    std::vector<uint8_t> sector(512, 'w');
    machine.blk()->disk().write_sectors(5, sector);
    vmm::SnapshotConfig described;
    vmm::save_machine_snapshot(machine, snapshot, std::nullopt, &described);
    vmm::Machine restored(config);
    vmm::restore_machine_snapshot(restored, snapshot);
    std::vector<uint8_t> back(2 * 512);
    restored.blk()->disk().read_sectors(4, back);
    EXPECT_EQ(back[0], 'b');
    EXPECT_EQ(back[512], 'w');
    EXPECT_TRUE(restored.blk()->disk().sector_written(5));
    fs::remove(snapshot);
  }
  // CLI: a changed base image is refused.
  demo_with_snapshot(snapshot, kDemoTrigger, "--disk " + image.string());
  const Outcome same = vmm("run --restore " + snapshot.string() + " --serial-in none");
  EXPECT_EQ(same.status, 0) << same.err;
  std::string changed = read_file(image);
  changed[100] = 'c';
  write_file(image, changed);
  const Outcome refused = vmm("run --restore " + snapshot.string());
  EXPECT_EQ(refused.status, 2);
  EXPECT_NE(refused.err.find("changed since the snapshot"), std::string::npos) << refused.err;
}

}  // namespace
