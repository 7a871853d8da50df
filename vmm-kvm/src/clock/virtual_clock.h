#pragma once
// The guest's clock during record and replay: a value that changes only when
// the session sets it, at points that are either logged (clock samples) or
// derived deterministically (idle skips to the next device deadline). See
// docs/record-replay.md, "Time".
#include <cstdint>

#include "devices/device.h"

namespace vmm {

class VirtualClock final : public Clock {
 public:
  uint64_t now_ns() override { return now_ns_; }
  void resume_at(uint64_t guest_ns) override { now_ns_ = guest_ns; }
  // Time never runs backwards: a sample older than now is ignored.
  void advance_to(uint64_t guest_ns) {
    if (guest_ns > now_ns_) now_ns_ = guest_ns;
  }

 private:
  uint64_t now_ns_ = 0;
};

}  // namespace vmm
