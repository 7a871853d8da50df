#include "librr/log_byte_report.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "librr/compress.h"
#include "librr/log.h"
#include "librr/page_delta.h"
#include "log_compact.h"
#include "log_format.h"
#include "log_io.h"

namespace librr {
namespace {

constexpr size_t kTagAndPosition = 1 + 3 * sizeof(uint64_t);

// Display order: records, then the parts of an asynchronous position, then
// inputs by channel (added as they are seen).
const std::vector<std::string>& fixed_kinds() {
  static const std::vector<std::string> kinds = {"InterruptDelivery",
                                                 "AsyncPosition",
                                                 "AsyncPosition.vcpu_state",
                                                 "AsyncPosition.memory",
                                                 "AsyncPosition.kernel_entries",
                                                 "StateDigest",
                                                 "CheckpointRef",
                                                 "EndOfRecording"};
  return kinds;
}

std::string kind_of(const Event& event) {
  if (const auto* input = std::get_if<Input>(&event)) return "Input:" + input->channel;
  return std::string(event_type_name(event_type(event)));
}

// One kind's bytes in the current chunk and its totals.
struct Stream {
  LogByteShare share;
  std::vector<uint8_t> chunk;
};

class Accounting {
 public:
  Stream& stream(const std::string& kind) {
    Stream& s = streams_[kind];
    s.share.kind = kind;
    return s;
  }
  // One record of `kind` (or one record's part) of `bytes`.
  void add(const std::string& kind, std::span<const uint8_t> bytes) {
    Stream& s = stream(kind);
    s.chunk.insert(s.chunk.end(), bytes.begin(), bytes.end());
    s.share.raw_bytes += bytes.size();
    ++s.share.records;
  }
  // Compresses what each kind wrote in the chunk that just ended.
  void end_chunk() {
    for (auto& [kind, s] : streams_) {
      if (s.chunk.empty()) continue;
      scratch_.clear();
      s.share.compressed_alone += compressor_.compress_append(s.chunk, scratch_);
      s.chunk.clear();
    }
  }
  std::vector<LogByteShare> shares() const {
    std::vector<LogByteShare> out;
    for (const std::string& kind : fixed_kinds())
      if (auto it = streams_.find(kind); it != streams_.end()) out.push_back(it->second.share);
    for (const auto& [kind, s] : streams_)
      if (std::find(fixed_kinds().begin(), fixed_kinds().end(), kind) == fixed_kinds().end())
        out.push_back(s.share);
    return out;
  }

 private:
  std::map<std::string, Stream> streams_;
  ZstdCompressor compressor_{LogWriterOptions{}.compression_level};  // as the writer
  std::vector<uint8_t> scratch_;
};

// The record's compact (format 2) form, coded against the records before it
// in its chunk as the writer codes it.
std::vector<uint8_t> compact_form(const Event& event, logcompact::RecordCompactor& chunk) {
  std::vector<uint8_t> out;
  chunk.add(encode_event(event), out);
  return out;
}

// An asynchronous position split into its record framing, the vCPU state
// blob (with its length) and the memory part (kind byte and delta or digest).
void add_async_position(Accounting& accounting, const AsyncPosition& async,
                        std::span<const uint8_t> compact) {
  const size_t body = compact.size() - (encode_event(async).size() - kTagAndPosition);
  const size_t state = sizeof(uint32_t) + async.vcpu_state.size();
  const size_t format_field = sizeof(uint32_t);
  const auto head = compact.first(body + format_field);
  const auto vcpu = compact.subspan(head.size(), state);
  const size_t entries =
      async.kernel_entries ? 1 + 8 * async.kernel_entries->addresses.size() + 4 : 0;
  const auto memory = compact.subspan(head.size() + state);
  accounting.add("AsyncPosition", head);
  accounting.add("AsyncPosition.vcpu_state", vcpu);
  accounting.add("AsyncPosition.memory", memory.first(memory.size() - entries));
  if (entries) accounting.add("AsyncPosition.kernel_entries", memory.last(entries));
}

const char* page_form_name(PageForm form) {
  switch (form) {
    case PageForm::unchanged:
      return "unchanged (listed)";
    case PageForm::sparse_xor:
      return "sparse XOR";
    case PageForm::zstd_xor:
      return "zstd XOR";
    case PageForm::literal:
      return "literal";
    case PageForm::copied_range:
      return "copied range";
    case PageForm::filled_range:
      return "filled range";
  }
  return "?";
}

void count_page_forms(const AsyncPosition& async, std::vector<PageFormShare>& forms) {
  const auto* delta = std::get_if<MemoryDelta>(&async.memory);
  if (!delta) return;
  for (const PageDelta& page : delta->pages) {
    PageFormShare& share = forms[static_cast<size_t>(page_form(page))];
    ++share.pages;
    share.bytes += page.compressed_xor.size();
  }
}

// The chunk headers' bytes: fixed before log format 2.5, of varying size since.
uint64_t chunk_header_bytes(const std::filesystem::path& log, const LogReader& reader) {
  const LogInfo& info = reader.info();
  logfmt::FileHeader file;
  file.version_major = info.version_major;
  file.version_minor = info.version_minor;
  file.flags = info.mac ? logfmt::kFlagMac : 0;
  const logfmt::ChunkLayout layout = file.chunk_layout();
  logio::UniqueFd fd = logio::open_or_throw(log, O_RDONLY);
  uint64_t total = 0;
  for (const ChunkIndexEntry& chunk : reader.chunk_index())
    total += logfmt::ChunkHeader::decode(
                 logio::pread_upto(fd.get(), chunk.offset, layout.max_size(), log), layout)
                 .header_size;
  return total;
}

}  // namespace

LogByteReport measure_log_bytes(const std::filesystem::path& log, std::optional<Key> key) {
  LogReaderOptions options;
  options.key = std::move(key);
  options.write_index = false;
  LogReader reader(log, options);
  LogByteReport report;
  report.file_bytes = std::filesystem::file_size(log);
  report.framing_bytes = reader.info().header_size;

  std::vector<uint64_t> chunk_starts;
  for (const ChunkIndexEntry& chunk : reader.chunk_index())
    chunk_starts.push_back(chunk.first_record_index);
  size_t next_chunk = 0;
  Accounting accounting;
  std::vector<PageFormShare> forms(static_cast<size_t>(PageForm::filled_range) + 1);
  for (size_t i = 0; i < forms.size(); ++i)
    forms[i].form = page_form_name(static_cast<PageForm>(i));
  const bool clock_deltas =
      logfmt::has_clock_deltas(reader.info().version_major, reader.info().version_minor);
  std::optional<logcompact::RecordCompactor> chunk;
  while (true) {
    const uint64_t index = reader.next_record_index();
    const Event* event = reader.next_ref();
    if (!event) break;
    if (next_chunk < chunk_starts.size() && index == chunk_starts[next_chunk]) {
      if (next_chunk > 0) accounting.end_chunk();
      ++next_chunk;
      chunk.emplace(event_position(*event), clock_deltas);  // the header's first position
    }
    if (!chunk) chunk.emplace(event_position(*event), clock_deltas);
    const std::vector<uint8_t> compact = compact_form(*event, *chunk);
    if (const auto* async = std::get_if<AsyncPosition>(event)) {
      add_async_position(accounting, *async, compact);
      count_page_forms(*async, forms);
    } else
      accounting.add(kind_of(*event), compact);
  }
  accounting.end_chunk();
  report.chunks = next_chunk;
  report.framing_bytes += chunk_header_bytes(log, reader);
  report.stored_payload_bytes =
      report.file_bytes > report.framing_bytes ? report.file_bytes - report.framing_bytes : 0;
  report.shares = accounting.shares();
  for (PageFormShare& form : forms)
    if (form.pages > 0) report.page_forms.push_back(std::move(form));
  for (const LogByteShare& share : report.shares) report.raw_bytes += share.raw_bytes;
  return report;
}

std::string LogByteReport::to_string() const {
  std::string s = fmt::format(
      "log file {} B: {} chunks, {} B of file and chunk headers, {} B compressed payload "
      "({} B raw, compact framing)\n",
      file_bytes, chunks, framing_bytes, stored_payload_bytes, raw_bytes);
  s += fmt::format("  {:<28}{:>9}{:>11}{:>8}{:>11}{:>9}\n", "kind", "records", "raw B", "raw %",
                   "zstd B*", "B/rec*");
  for (const LogByteShare& share : shares) {
    const double percent =
        raw_bytes ? 100.0 * static_cast<double>(share.raw_bytes) / static_cast<double>(raw_bytes)
                  : 0.0;
    const std::string per_record =
        share.records ? fmt::format("{:.1f}", static_cast<double>(share.compressed_alone) /
                                                  static_cast<double>(share.records))
                      : "";
    s += fmt::format("  {:<28}{:>9}{:>11}{:>8.1f}{:>11}{:>9}\n", share.kind, share.records,
                     share.raw_bytes, percent, share.compressed_alone, per_record);
  }
  s += fmt::format(
      "  * each kind's bytes of each chunk compressed alone (zstd level {}, as the writer)\n",
      LogWriterOptions{}.compression_level);
  if (page_forms.empty()) return s;
  s += fmt::format("  {:<28}{:>9}{:>11}{:>9}\n", "memory delta pages as", "pages", "coded B",
                   "B/page");
  for (const PageFormShare& form : page_forms)
    s += fmt::format("  {:<28}{:>9}{:>11}{:>9.1f}\n", form.form, form.pages, form.bytes,
                     static_cast<double>(form.bytes) / static_cast<double>(form.pages));
  return s;
}

}  // namespace librr
