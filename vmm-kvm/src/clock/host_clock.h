#pragma once
// The guest's clock during plain (non-recorded) runs: guest time is host
// CLOCK_MONOTONIC minus the moment the machine was created, so the guest sees
// time start at 0 and advance in real time. Devices read it only through the
// Clock interface; record/replay substitutes its own Clock.
#include <cstdint>

#include "devices/device.h"

namespace vmm {

// Host CLOCK_MONOTONIC in nanoseconds.
uint64_t host_monotonic_ns();

class HostClock final : public Clock {
 public:
  HostClock() : origin_ns_(host_monotonic_ns()) {}
  uint64_t now_ns() override { return host_monotonic_ns() - origin_ns_; }
  void resume_at(uint64_t guest_ns) override { origin_ns_ = host_monotonic_ns() - guest_ns; }
  // Host CLOCK_MONOTONIC time at which the guest clock reads `guest_ns`.
  uint64_t host_time_of(uint64_t guest_ns) const { return origin_ns_ + guest_ns; }

 private:
  uint64_t origin_ns_;
};

}  // namespace vmm
