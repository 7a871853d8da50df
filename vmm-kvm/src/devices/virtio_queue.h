#pragma once
// A split virtqueue (VIRTIO 1.1 section 2.6) seen from the device side.
//
// Everything in the rings is written by the guest and may be hostile, so
// every value read from guest memory is validated before use: ring layout,
// avail index progress, head and next indices, chain length (loops), buffer
// bounds (through GuestMemory::translate), overlaps between buffers and with
// the rings, descriptor direction order and indirect tables. A violation
// throws VirtqueueViolation; the transport turns that into the device error
// state (DEVICE_NEEDS_RESET). No host pointer is ever formed outside guest RAM.
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "guest_memory.h"
#include "librr/bytes.h"

namespace vmm::virtio {

// Largest indirect table accepted (entries); larger ones are absurd for any
// driver and would only make the device walk long chains.
inline constexpr uint32_t kMaxIndirectEntries = 4096;

// Descriptor index used in a violation that concerns no particular descriptor
// (ring layout, avail index).
inline constexpr uint32_t kNoDescriptor = 0xffffffff;

// The guest broke the virtqueue protocol. `descriptor` is the index of the
// offending descriptor (in the indirect table if `indirect`), or kNoDescriptor.
class VirtqueueViolation : public std::runtime_error {
 public:
  VirtqueueViolation(uint32_t descriptor, const std::string& problem, bool indirect = false)
      : std::runtime_error(problem), descriptor_(descriptor), indirect_(indirect) {}
  uint32_t descriptor() const { return descriptor_; }
  bool indirect() const { return indirect_; }

 private:
  uint32_t descriptor_;
  bool indirect_;
};

// One guest buffer of a chain, already checked to lie inside guest RAM.
struct GuestBuffer {
  uint64_t gpa = 0;
  uint32_t len = 0;
};

// A validated descriptor chain: device-readable buffers first, then
// device-writable ones, as the spec requires.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<GuestBuffer> readable;
  std::vector<GuestBuffer> writable;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;

  // Copies `dst.size()` bytes starting `offset` bytes into the readable
  // buffers; false if the chain holds fewer bytes.
  bool read(const GuestMemory& mem, uint64_t offset, std::span<uint8_t> dst) const;
  // Copies `src` to `offset` bytes into the writable buffers; false if the
  // chain has less room.
  bool write(const GuestMemory& mem, uint64_t offset, std::span<const uint8_t> src) const;
};

class Virtqueue {
 public:
  explicit Virtqueue(uint16_t max_size) : max_size_(max_size) {}

  // Registers programmed by the driver through the transport.
  uint16_t max_size() const { return max_size_; }
  uint16_t size = 0;
  bool ready = false;
  uint64_t desc_addr = 0;
  uint64_t driver_addr = 0;  // avail ring
  uint64_t device_addr = 0;  // used ring

  // Whether the driver negotiated VIRTIO_F_INDIRECT_DESC (set by the transport).
  bool indirect_allowed = false;

  // Back to the state after device reset (size reverts to the maximum).
  void reset();

  // Validates size and ring addresses; called when the driver sets
  // QueueReady. Throws VirtqueueViolation.
  void check_layout(const GuestMemory& mem) const;

  // True if the driver has made buffers available that were not popped yet.
  // Throws on an avail index that moved by more than the queue size.
  bool has_available(const GuestMemory& mem) const;

  // Pops and validates the next available chain into `chain`; false if
  // none is available. Throws VirtqueueViolation.
  bool pop(const GuestMemory& mem, DescriptorChain& chain);

  // Returns a chain to the driver with `written` bytes written to it.
  void push_used(const GuestMemory& mem, uint16_t head, uint32_t written);

  // The driver asked not to be interrupted (VIRTQ_AVAIL_F_NO_INTERRUPT).
  bool interrupt_suppressed(const GuestMemory& mem) const;

  uint16_t last_avail_idx() const { return last_avail_idx_; }
  uint16_t used_idx() const { return used_idx_; }

  void save(librr::ByteWriter& out) const;
  // Throws librr::FormatError on values save() could not have written.
  void load(librr::ByteReader& in);

 private:
  uint16_t read_avail_idx(const GuestMemory& mem) const;
  void walk_chain(const GuestMemory& mem, uint16_t head, DescriptorChain& chain) const;
  void check_buffers(const DescriptorChain& chain) const;

  uint16_t max_size_;
  uint16_t last_avail_idx_ = 0;  // next avail ring slot the device will consume
  uint16_t used_idx_ = 0;        // next used ring slot the device will fill
};

}  // namespace vmm::virtio
