#include "devices/virtio_queue.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>

namespace vmm::virtio {
namespace {

// struct virtq_desc (VIRTIO 1.1, 2.6.5).
struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

constexpr uint16_t kDescNext = 1;
constexpr uint16_t kDescWrite = 2;
constexpr uint16_t kDescIndirect = 4;
constexpr uint16_t kAvailNoInterrupt = 1;

// Ring sizes in bytes; the avail and used rings include the trailing event
// index field so that layout checks hold whether or not EVENT_IDX is used.
uint64_t desc_table_bytes(uint16_t n) { return 16ull * n; }
uint64_t avail_ring_bytes(uint16_t n) { return 6ull + 2ull * n; }
uint64_t used_ring_bytes(uint16_t n) { return 6ull + 8ull * n; }

bool overlaps(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) {
  return a_len != 0 && b_len != 0 && a < b + b_len && b < a + a_len;
}

std::string range_text(uint64_t gpa, uint64_t len) {
  return fmt::format("[{:#x}, +{:#x})", gpa, len);
}

}  // namespace

bool DescriptorChain::read(const GuestMemory& mem, uint64_t offset, std::span<uint8_t> dst) const {
  size_t done = 0;
  for (const GuestBuffer& buf : readable) {
    if (done == dst.size()) break;
    if (offset >= buf.len) {
      offset -= buf.len;
      continue;
    }
    uint64_t n = std::min<uint64_t>(buf.len - offset, dst.size() - done);
    if (!mem.read(buf.gpa + offset, dst.data() + done, n)) return false;
    done += n;
    offset = 0;
  }
  return done == dst.size();
}

bool DescriptorChain::write(const GuestMemory& mem, uint64_t offset,
                            std::span<const uint8_t> src) const {
  size_t done = 0;
  for (const GuestBuffer& buf : writable) {
    if (done == src.size()) break;
    if (offset >= buf.len) {
      offset -= buf.len;
      continue;
    }
    uint64_t n = std::min<uint64_t>(buf.len - offset, src.size() - done);
    if (!mem.write(buf.gpa + offset, src.data() + done, n)) return false;
    done += n;
    offset = 0;
  }
  return done == src.size();
}

void Virtqueue::reset() {
  size = max_size_;
  ready = false;
  desc_addr = driver_addr = device_addr = 0;
  indirect_allowed = false;
  last_avail_idx_ = used_idx_ = 0;
}

void Virtqueue::check_layout(const GuestMemory& mem) const {
  if (size == 0 || size > max_size_ || (size & (size - 1)) != 0)
    throw VirtqueueViolation(
        kNoDescriptor,
        fmt::format("queue size {} is not a power of two in [1, {}]", size, max_size_));
  struct Area {
    const char* what;
    uint64_t gpa, len, align;
  };
  const Area areas[] = {{"descriptor table", desc_addr, desc_table_bytes(size), 16},
                        {"avail ring", driver_addr, avail_ring_bytes(size), 2},
                        {"used ring", device_addr, used_ring_bytes(size), 4}};
  for (const Area& area : areas) {
    if (area.gpa % area.align != 0)
      throw VirtqueueViolation(kNoDescriptor, fmt::format("{} at {:#x} is not {}-byte aligned",
                                                          area.what, area.gpa, area.align));
    if (!mem.translate(area.gpa, area.len))
      throw VirtqueueViolation(kNoDescriptor, fmt::format("{} {} lies outside guest RAM", area.what,
                                                          range_text(area.gpa, area.len)));
  }
  // The device writes the used ring; letting it overlap what the driver
  // writes would make the device corrupt its own input.
  for (const Area& other : {areas[0], areas[1]})
    if (overlaps(device_addr, used_ring_bytes(size), other.gpa, other.len))
      throw VirtqueueViolation(kNoDescriptor, fmt::format("used ring overlaps the {}", other.what));
}

uint16_t Virtqueue::read_avail_idx(const GuestMemory& mem) const {
  auto idx = mem.read_obj<uint16_t>(driver_addr + 2);
  if (!idx) throw VirtqueueViolation(kNoDescriptor, "avail ring outside guest RAM");
  // Ring entries are read after the index that published them.
  std::atomic_thread_fence(std::memory_order_acquire);
  uint16_t pending = static_cast<uint16_t>(*idx - last_avail_idx_);
  if (pending > size)
    throw VirtqueueViolation(
        kNoDescriptor, fmt::format("avail idx jumped from {} to {}, more than the queue size {}",
                                   last_avail_idx_, *idx, size));
  return *idx;
}

bool Virtqueue::has_available(const GuestMemory& mem) const {
  return ready && read_avail_idx(mem) != last_avail_idx_;
}

bool Virtqueue::pop(const GuestMemory& mem, DescriptorChain& chain) {
  if (!ready || read_avail_idx(mem) == last_avail_idx_) return false;
  uint64_t slot = driver_addr + 4 + 2ull * (last_avail_idx_ % size);
  auto head = mem.read_obj<uint16_t>(slot);
  if (!head) throw VirtqueueViolation(kNoDescriptor, "avail ring outside guest RAM");
  if (*head >= size)
    throw VirtqueueViolation(*head, fmt::format("avail ring slot {} names head {}, queue size {}",
                                                last_avail_idx_ % size, *head, size));
  walk_chain(mem, *head, chain);
  check_buffers(chain);
  ++last_avail_idx_;
  return true;
}

void Virtqueue::walk_chain(const GuestMemory& mem, uint16_t head, DescriptorChain& chain) const {
  chain = DescriptorChain{};
  chain.head = head;
  uint64_t table = desc_addr;
  uint32_t table_entries = size;
  uint32_t index = head;
  bool in_indirect = false;
  // A direct chain may not be longer than the queue size (2.6.5.3.1) and an
  // indirect one not longer than its table (as in QEMU: Linux sizes indirect
  // tables by segment count, which may exceed a small queue). Either cap
  // also bounds any loop the guest builds out of `next` links.
  uint32_t limit = size;
  uint32_t visited = 0;
  for (;;) {
    if (++visited > limit)
      throw VirtqueueViolation(
          index,
          fmt::format("chain longer than the {} {} (descriptor loop?)",
                      in_indirect ? "indirect table size" : "queue size", limit),
          in_indirect);
    auto desc = mem.read_obj<Descriptor>(table + 16ull * index);
    if (!desc) throw VirtqueueViolation(index, "descriptor outside guest RAM", in_indirect);

    if (desc->flags & kDescIndirect) {
      if (!indirect_allowed)
        throw VirtqueueViolation(index, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
      if (in_indirect) throw VirtqueueViolation(index, "nested indirect descriptor", in_indirect);
      if (desc->flags & kDescNext)
        throw VirtqueueViolation(index, "indirect descriptor also has NEXT set");
      if (desc->len == 0 || desc->len % 16 != 0)
        throw VirtqueueViolation(
            index,
            fmt::format("indirect table length {} is not a non-zero multiple of 16", desc->len));
      if (!mem.translate(desc->addr, desc->len))
        throw VirtqueueViolation(index, fmt::format("indirect table {} lies outside guest RAM",
                                                    range_text(desc->addr, desc->len)));
      if (desc->len / 16 > kMaxIndirectEntries)
        throw VirtqueueViolation(index, fmt::format("indirect table of {} entries exceeds {}",
                                                    desc->len / 16, kMaxIndirectEntries));
      table = desc->addr;
      table_entries = desc->len / 16;
      limit = table_entries;
      visited = 0;
      index = 0;
      in_indirect = true;
      continue;
    }

    if (!mem.translate(desc->addr, desc->len))
      throw VirtqueueViolation(
          index, fmt::format("buffer {} lies outside guest RAM", range_text(desc->addr, desc->len)),
          in_indirect);
    GuestBuffer buf{desc->addr, desc->len};
    if (desc->flags & kDescWrite) {
      chain.writable.push_back(buf);
      chain.writable_bytes += buf.len;
    } else {
      if (!chain.writable.empty())
        throw VirtqueueViolation(index, "device-readable buffer after a device-writable one",
                                 in_indirect);
      chain.readable.push_back(buf);
      chain.readable_bytes += buf.len;
    }
    if (!(desc->flags & kDescNext)) return;
    if (desc->next >= table_entries)
      throw VirtqueueViolation(index,
                               fmt::format("next index {} out of range (table has {} entries)",
                                           desc->next, table_entries),
                               in_indirect);
    index = desc->next;
  }
}

void Virtqueue::check_buffers(const DescriptorChain& chain) const {
  // Buffers of one chain must not overlap each other (a device write would
  // otherwise change data it still has to read), and nothing the device
  // writes may overlap the rings it is walking.
  struct Span {
    uint64_t gpa, len;
    bool writable;
  };
  std::vector<Span> spans;
  spans.reserve(chain.readable.size() + chain.writable.size());
  for (const GuestBuffer& b : chain.readable) spans.push_back({b.gpa, b.len, false});
  for (const GuestBuffer& b : chain.writable) spans.push_back({b.gpa, b.len, true});
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.gpa < b.gpa; });
  uint64_t covered_end = 0;  // end of the furthest-reaching non-empty span so far
  for (const Span& s : spans) {
    if (s.len == 0) continue;
    if (s.gpa < covered_end)
      throw VirtqueueViolation(
          chain.head,
          fmt::format("buffer {} overlaps another buffer of the chain", range_text(s.gpa, s.len)));
    covered_end = s.gpa + s.len;
    if (s.writable && (overlaps(s.gpa, s.len, desc_addr, desc_table_bytes(size)) ||
                       overlaps(s.gpa, s.len, driver_addr, avail_ring_bytes(size)) ||
                       overlaps(s.gpa, s.len, device_addr, used_ring_bytes(size))))
      throw VirtqueueViolation(
          chain.head,
          fmt::format("device-writable buffer {} overlaps the rings", range_text(s.gpa, s.len)));
  }
}

void Virtqueue::push_used(const GuestMemory& mem, uint16_t head, uint32_t written) {
  struct UsedElem {
    uint32_t id;
    uint32_t len;
  };
  uint64_t slot = device_addr + 4 + 8ull * (used_idx_ % size);
  if (!mem.write_obj(slot, UsedElem{head, written}))
    throw VirtqueueViolation(head, "used ring outside guest RAM");
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  ++used_idx_;
  if (!mem.write_obj<uint16_t>(device_addr + 2, used_idx_))
    throw VirtqueueViolation(head, "used ring outside guest RAM");
}

bool Virtqueue::interrupt_suppressed(const GuestMemory& mem) const {
  auto flags = mem.read_obj<uint16_t>(driver_addr);
  return flags && (*flags & kAvailNoInterrupt);
}

void Virtqueue::save(librr::ByteWriter& out) const {
  out.u16(max_size_);
  out.u16(size);
  out.boolean(ready);
  out.u64(desc_addr);
  out.u64(driver_addr);
  out.u64(device_addr);
  out.boolean(indirect_allowed);
  out.u16(last_avail_idx_);
  out.u16(used_idx_);
}

void Virtqueue::load(librr::ByteReader& in) {
  int64_t at = static_cast<int64_t>(in.position());
  uint16_t saved_max = in.u16();
  if (saved_max != max_size_)
    throw librr::FormatError(
        fmt::format("virtqueue: saved max size {} != device max size {}", saved_max, max_size_),
        at);
  // A queue that is not ready holds whatever the driver wrote to QueueNum;
  // a ready one passed check_layout() and so has a valid size.
  size = in.u16();
  ready = in.boolean();
  if (ready && (size == 0 || size > max_size_ || (size & (size - 1)) != 0))
    throw librr::FormatError(fmt::format("virtqueue: ready queue has invalid size {}", size), at);
  desc_addr = in.u64();
  driver_addr = in.u64();
  device_addr = in.u64();
  indirect_allowed = in.boolean();
  last_avail_idx_ = in.u16();
  used_idx_ = in.u16();
}

}  // namespace vmm::virtio
