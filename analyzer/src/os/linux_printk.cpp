// The Linux 5.10+/6.x lockless printk ring buffer (kernel/printk/printk_ringbuffer.h):
// `prb` points at a printk_ringbuffer whose desc_ring holds 2^count_bits
// descriptors (state + id in state_var, the text block's logical positions)
// and a parallel array of printk_info (seq, timestamp, level, text length);
// the text lives in text_data_ring as blocks {unsigned long id; char text[]}
// addressed by logical positions that wrap around a 2^size_bits buffer.
#include <fmt/format.h>

#include <algorithm>

#include "os/linux_model.h"

namespace analyzer {
namespace {

constexpr int kStateShift = 62;                               // DESC_FLAGS_SHIFT (64-bit)
constexpr uint64_t kIdMask = (1ull << kStateShift) - 1;       // DESC_ID_MASK
constexpr uint64_t kStateCommitted = 1, kStateFinalized = 2;  // enum desc_state
constexpr uint64_t kDatalessBit = 1;                          // LPOS_DATALESS()
constexpr int kDefaultConsoleLoglevel = 7;                    // CONSOLE_LOGLEVEL_DEFAULT

}  // namespace

std::vector<LogRecord> LinuxModel::log_records() const {
  const uint64_t ring_address = memory_.read_u64(profile_.symbol("prb"), "prb");
  const StructView ring = object("printk_ringbuffer", ring_address);
  const StructView descriptors = ring.member("desc_ring");
  const StructView text_ring = ring.member("text_data_ring");
  const uint64_t count_bits = descriptors.unsigned_value("count_bits");
  const uint64_t size_bits = text_ring.unsigned_value("size_bits");
  if (count_bits > 24 || size_bits > 31)
    throw GuestReadError(
        fmt::format("printk ring buffer at {:#x} looks corrupt (count_bits {}, size_bits {})",
                    ring_address, count_bits, size_bits));
  const uint64_t count = 1ull << count_bits;
  const uint64_t text_size = 1ull << size_bits;
  const uint64_t descs = descriptors.unsigned_value("descs");
  const uint64_t infos = descriptors.unsigned_value("infos");
  const uint64_t text_data = text_ring.unsigned_value("data");
  const uint64_t desc_size = profile_.type_size("prb_desc");
  const uint64_t info_size = profile_.type_size("printk_info");
  const uint64_t head = descriptors.unsigned_value("head_id.counter") & kIdMask;
  const uint64_t tail = descriptors.unsigned_value("tail_id.counter") & kIdMask;

  std::vector<LogRecord> records;
  for (uint64_t id = tail, visited = 0; visited < count; id = (id + 1) & kIdMask, ++visited) {
    const uint64_t index = id & (count - 1);
    const StructView desc = object("prb_desc", descs + index * desc_size);
    const uint64_t state_var = desc.unsigned_value("state_var.counter");
    const uint64_t state = state_var >> kStateShift;
    const bool usable =
        (state_var & kIdMask) == id && (state == kStateCommitted || state == kStateFinalized);
    if (usable) {
      const StructView info = object("printk_info", infos + index * info_size);
      LogRecord record;
      record.sequence = info.unsigned_value("seq");
      record.timestamp_ns = info.unsigned_value("ts_nsec");
      record.level = static_cast<int>(info.unsigned_value("level"));
      record.facility = static_cast<int>(info.unsigned_value("facility"));
      const uint64_t text_length = info.unsigned_value("text_len");
      const uint64_t begin = desc.unsigned_value("text_blk_lpos.begin");
      const uint64_t next = desc.unsigned_value("text_blk_lpos.next");
      if ((begin & kDatalessBit) == 0 && text_length > 0) {
        // A block that would wrap is stored whole at the start of the buffer.
        const uint64_t begin_wraps = begin >> size_bits, next_wraps = next >> size_bits;
        uint64_t offset = 0, block_length = 0;
        if (begin_wraps == next_wraps) {
          offset = begin & (text_size - 1);
          block_length = next - begin;
        } else if (begin_wraps + 1 == next_wraps) {
          block_length = next & (text_size - 1);
        }
        const uint64_t header = sizeof(uint64_t);  // prb_data_block.id
        if (block_length >= header && text_length <= block_length - header) {
          record.text.resize(text_length);
          memory_.read(text_data + offset + header,
                       {reinterpret_cast<uint8_t*>(record.text.data()), record.text.size()},
                       fmt::format("printk record {} text", record.sequence));
        }
      }
      records.push_back(std::move(record));
    }
    if (id == head) break;
  }
  std::sort(records.begin(), records.end(),
            [](const LogRecord& a, const LogRecord& b) { return a.sequence < b.sequence; });
  return records;
}

int LinuxModel::console_loglevel() const {
  // console_printk[0] is console_loglevel (kernel/printk/printk.c).
  if (auto address = profile_.find_symbol("console_printk"))
    return static_cast<int>(memory_.read_unsigned(*address, 4, "console_printk"));
  return kDefaultConsoleLoglevel;
}

std::string LinuxModel::format_log(const std::vector<LogRecord>& records,
                                   std::optional<int> below_level) {
  std::string out;
  for (const LogRecord& record : records) {
    if (below_level && record.level >= *below_level) continue;
    // Every line of a record gets the record's time prefix (record_print_text()).
    const std::string prefix = fmt::format("[{:5}.{:06}] ", record.timestamp_ns / 1000000000,
                                           record.timestamp_ns % 1000000000 / 1000);
    size_t start = 0;
    do {
      const size_t end = record.text.find('\n', start);
      out += prefix;
      out.append(record.text, start, end == std::string::npos ? std::string::npos : end - start);
      out += '\n';
      start = end == std::string::npos ? std::string::npos : end + 1;
    } while (start != std::string::npos);
  }
  return out;
}

std::string LinuxModel::kernel_log() const { return format_log(log_records()); }

}  // namespace analyzer
