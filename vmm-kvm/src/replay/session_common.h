#pragma once
// What record and replay sessions share: the position counter, the state
// digest, and the serial-input endpoints (the one place serial input is
// recorded, and the one place it is replayed).
#include <cstdint>
#include <span>

#include "devices/serial_backends.h"
#include "librr/events.h"
#include "librr/recorder.h"
#include "librr/replayer.h"
#include "machine/machine.h"

namespace vmm {

// Format tag of the vCPU state blobs in AsyncPosition records (VcpuState::save).
inline constexpr uint32_t kVcpuStateFormat = 1;

// Where the session is: landmarks are counted at synchronous exits, async
// stops between them (docs/record-replay.md, "Positions").
class Timeline {
 public:
  librr::Position position() const { return {landmark_, async_seq_, 0}; }
  void enter_landmark() {
    ++landmark_;
    async_seq_ = 0;
  }
  void enter_async_stop() { ++async_seq_; }
  uint64_t landmark() const { return landmark_; }

 private:
  uint64_t landmark_ = 0;
  uint64_t async_seq_ = 0;
};

// BLAKE2b of the registers that define where the guest is, and a fast
// 128-bit hash of all of guest RAM (zero-padded into the 32-byte field).
librr::StateDigest compute_state_digest(Machine& machine, const librr::Position& pos);
// "registers", "memory" or "" when equal.
std::string describe_digest_difference(const librr::StateDigest& expected,
                                       const librr::StateDigest& actual);

// Record: wraps the real serial input; every byte the UART takes is logged at
// the session's current position.
class RecordingSerialInput final : public SerialInput {
 public:
  RecordingSerialInput(SerialInput& inner, librr::Recorder& recorder, const Timeline& timeline);
  ~RecordingSerialInput() override;
  size_t take(std::span<uint8_t> out) override;
  bool has_data() const override { return inner_.has_data(); }

 private:
  SerialInput& inner_;
  librr::Recorder& recorder_;
  const Timeline& timeline_;
};

// Replay: hands the UART exactly the bytes logged at the current position.
class ReplaySerialInput final : public SerialInput {
 public:
  ReplaySerialInput(librr::Replayer& replayer, const Timeline& timeline)
      : replayer_(replayer), timeline_(timeline) {}
  size_t take(std::span<uint8_t> out) override;
  bool has_data() const override;

 private:
  librr::Replayer& replayer_;
  const Timeline& timeline_;
  std::vector<uint8_t> pending_;  // logged bytes at this position not yet taken
};

}  // namespace vmm
