#include "pcapng.h"

#include <cstring>

namespace gateway::pcapng {
namespace {

constexpr uint32_t kSectionHeaderBlock = 0x0A0D0D0A;
constexpr uint32_t kInterfaceDescriptionBlock = 1;
constexpr uint32_t kInterfaceStatisticsBlock = 5;
constexpr uint32_t kEnhancedPacketBlock = 6;
constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;

constexpr uint16_t kOptEndOfOptions = 0;
constexpr uint16_t kShbUserApplication = 4;
constexpr uint16_t kIfName = 2;
constexpr uint16_t kIfTsresol = 9;
constexpr uint16_t kEpbFlags = 2;
constexpr uint16_t kEpbDropCount = 4;
constexpr uint16_t kIsbStartTime = 2;
constexpr uint16_t kIsbEndTime = 3;
constexpr uint16_t kIsbIfRecv = 4;
constexpr uint16_t kIsbIfDrop = 5;

size_t padded(size_t n) { return (n + 3) & ~size_t{3}; }

// Writes a block: header, body written by `body`, trailing length. The body
// callback appends to `out`; lengths are patched in afterwards.
class BlockWriter {
 public:
  BlockWriter(std::vector<uint8_t>& out, uint32_t type) : out_(out), start_(out.size()) {
    u32(type);
    u32(0);  // total length, patched by finish()
  }
  void u16(uint16_t v) { raw(&v, 2); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  // A timestamp as two 32-bit words, high first (pcapng's layout).
  void timestamp(uint64_t ns) {
    u32(static_cast<uint32_t>(ns >> 32));
    u32(static_cast<uint32_t>(ns));
  }
  void raw(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  void pad() { out_.resize(start_ + padded(out_.size() - start_), 0); }
  void option(uint16_t code, const void* value, uint16_t length) {
    u16(code);
    u16(length);
    raw(value, length);
    pad();
  }
  void end_options() {
    u16(kOptEndOfOptions);
    u16(0);
  }
  size_t finish() {
    auto total = static_cast<uint32_t>(out_.size() - start_ + 4);
    u32(total);
    std::memcpy(out_.data() + start_ + 4, &total, 4);
    return total;
  }

 private:
  std::vector<uint8_t>& out_;
  size_t start_;
};

}  // namespace

size_t append_section_header(std::vector<uint8_t>& out, std::string_view application) {
  BlockWriter b(out, kSectionHeaderBlock);
  b.u32(kByteOrderMagic);
  b.u16(1);             // major version
  b.u16(0);             // minor version
  b.u64(~uint64_t{0});  // section length: not specified
  b.option(kShbUserApplication, application.data(), static_cast<uint16_t>(application.size()));
  b.end_options();
  return b.finish();
}

size_t append_interface_description(std::vector<uint8_t>& out, std::string_view name,
                                    uint32_t snaplen) {
  BlockWriter b(out, kInterfaceDescriptionBlock);
  b.u16(kLinkTypeEthernet);
  b.u16(0);  // reserved
  b.u32(snaplen);
  b.option(kIfName, name.data(), static_cast<uint16_t>(name.size()));
  uint8_t nanoseconds = 9;  // 10^-9 s
  b.option(kIfTsresol, &nanoseconds, 1);
  b.end_options();
  return b.finish();
}

size_t append_enhanced_packet(std::vector<uint8_t>& out, uint32_t interface_id,
                              uint64_t timestamp_ns, std::span<const uint8_t> captured,
                              uint32_t wire_length, uint32_t flags, uint64_t drop_count) {
  BlockWriter b(out, kEnhancedPacketBlock);
  b.u32(interface_id);
  b.timestamp(timestamp_ns);
  b.u32(static_cast<uint32_t>(captured.size()));
  b.u32(wire_length);
  b.raw(captured.data(), captured.size());
  b.pad();
  b.option(kEpbFlags, &flags, 4);
  b.option(kEpbDropCount, &drop_count, 8);
  b.end_options();
  return b.finish();
}

size_t append_interface_statistics(std::vector<uint8_t>& out, const InterfaceStatistics& stats) {
  BlockWriter b(out, kInterfaceStatisticsBlock);
  b.u32(stats.interface_id);
  b.timestamp(stats.timestamp_ns);
  uint32_t start[2] = {static_cast<uint32_t>(stats.start_ns >> 32),
                       static_cast<uint32_t>(stats.start_ns)};
  b.option(kIsbStartTime, start, 8);
  uint32_t end[2] = {static_cast<uint32_t>(stats.timestamp_ns >> 32),
                     static_cast<uint32_t>(stats.timestamp_ns)};
  b.option(kIsbEndTime, end, 8);
  b.option(kIsbIfRecv, &stats.received, 8);
  b.option(kIsbIfDrop, &stats.dropped, 8);
  b.end_options();
  return b.finish();
}

}  // namespace gateway::pcapng
