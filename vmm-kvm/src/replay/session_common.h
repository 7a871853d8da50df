#pragma once
// What record and replay sessions share: the position counter, the state
// digest, and the serial-input and network-input endpoints (the one place
// each input is recorded, and the one place it is replayed).
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
  // Jumps to a position (restoring a checkpoint taken there).
  void reset(const librr::Position& pos) {
    landmark_ = pos.landmark;
    async_seq_ = pos.async_seq;
  }

 private:
  uint64_t landmark_ = 0;
  uint64_t async_seq_ = 0;
};

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
  // Bytes already taken from the log that the UART had no room for yet:
  // session state that a checkpoint saves and restores.
  std::vector<uint8_t>& pending() { return pending_; }

 private:
  librr::Replayer& replayer_;
  const Timeline& timeline_;
  std::vector<uint8_t> pending_;  // logged bytes at this position not yet taken
};

// Record: the one place a received network frame is logged. Pumps the
// machine's network backend and logs every frame it takes (channel net0) at
// the session's current position, before the device sees it.
class RecordingNetInput {
 public:
  RecordingNetInput(Machine& machine, librr::Recorder& recorder, const Timeline& timeline)
      : machine_(machine), recorder_(recorder), timeline_(timeline) {}
  // The backend has frames and the device has room (no log entry, no syscall).
  bool ready() const { return machine_.net_input_ready(); }
  // Returns the number of frames taken and logged.
  size_t pump();
  uint64_t frames() const { return frames_; }
  uint64_t bytes() const { return bytes_; }

 private:
  Machine& machine_;
  librr::Recorder& recorder_;
  const Timeline& timeline_;
  uint64_t frames_ = 0, bytes_ = 0;
};

// Replay: the one place a logged frame reaches the guest. Delivers every
// frame logged at the current position to virtio-net, in log order; the
// machine's backend is "none", so nothing comes from or goes to the network.
class ReplayNetInput {
 public:
  ReplayNetInput(Machine& machine, librr::Replayer& replayer, const Timeline& timeline)
      : machine_(machine), replayer_(replayer), timeline_(timeline) {}
  // A frame is logged at the current position.
  bool next_is_frame() const;
  // Returns the number of frames delivered. Throws librr::Divergence if the
  // log has frames but the machine has no virtio-net device.
  size_t deliver_logged();

 private:
  Machine& machine_;
  librr::Replayer& replayer_;
  const Timeline& timeline_;
};

}  // namespace vmm
