#include "sql/log_tables.h"

#include <fmt/format.h>

#include <variant>

#include "librr/recorder.h"
#include "machine/vcpu_state.h"
#include "replay/session_common.h"

namespace analyzer::sql {
namespace {

constexpr size_t kEthernetHeaderBytes = 14;
constexpr uint16_t kEthertypeVlan = 0x8100;

std::optional<std::string> ethertype_name(uint16_t type) {
  switch (type) {
    case 0x0800:
      return "ipv4";
    case 0x0806:
      return "arp";
    case 0x86dd:
      return "ipv6";
    case kEthertypeVlan:
      return "vlan";
    case 0x88cc:
      return "lldp";
    default:
      return std::nullopt;
  }
}

uint16_t big_endian16(std::span<const uint8_t> bytes, size_t at) {
  return static_cast<uint16_t>(bytes[at] << 8 | bytes[at + 1]);
}

// One prepared INSERT per log-derived table, and what each record becomes.
class LogTableWriter {
 public:
  explicit LogTableWriter(Database& db)
      : interrupts_(db.prepare(
            "INSERT INTO interrupts (record_index, position, landmark, async_seq, vector, "
            "source_line) VALUES (?, ?, ?, ?, ?, ?)")),
        async_positions_(db.prepare(
            "INSERT INTO async_positions (record_index, position, landmark, async_seq, "
            "vcpu_state_format, vcpu_state_bytes, memory_kind, delta_reset_landmark, delta_pages, "
            "delta_bytes, rip, cpl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")),
        inputs_(db.prepare(
            "INSERT INTO inputs (record_index, channel, position, landmark, async_seq, length, "
            "data) VALUES (?, ?, ?, ?, ?, ?, ?)")),
        frames_(db.prepare(
            "INSERT INTO frames (record_index, position, landmark, async_seq, length, dst_mac, "
            "src_mac, ethertype, ethertype_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")),
        state_digests_(
            db.prepare("INSERT INTO state_digests (record_index, position, landmark, async_seq, "
                       "registers_digest, memory_digest, detail) VALUES (?, ?, ?, ?, ?, ?, ?)")) {}

  void write(uint64_t index, const librr::InterruptDelivery& irq) {
    interrupts_.run(index, irq.pos.to_string(), irq.pos.landmark, irq.pos.async_seq, irq.vector,
                    irq.source_line);
  }

  void write(uint64_t index, const librr::AsyncPosition& stop) {
    std::optional<uint64_t> reset_landmark, pages, bytes;
    const char* kind = "digest";
    if (const auto* delta = std::get_if<librr::MemoryDelta>(&stop.memory)) {
      kind = "delta";
      reset_landmark = delta->reset_landmark;
      pages = delta->pages.size();
      uint64_t total = 0;
      for (const librr::PageDelta& page : delta->pages) total += page.compressed_xor.size();
      bytes = total;
    } else if (const auto* listed = std::get_if<librr::PagesDigest>(&stop.memory)) {
      // Replay searches for this stop; its pages are hashed, not stored.
      kind = "pages-digest";
      pages = listed->gfns.size();
    }
    std::optional<uint64_t> rip, cpl;
    if (const auto* searched = std::get_if<librr::SearchedStop>(&stop.memory)) {
      // The same, logged as its rip and a registers hash (format 2.9): kernel mode.
      kind = "searched";
      // NULL when implied (format 2.12): those written since the previous position.
      if (!searched->pages_implied) pages = searched->pages.gfns.size();
      rip = searched->rip;
      cpl = 0;
    }
    if (std::holds_alternative<librr::KernelReturn>(stop.memory)) {
      kind = "kernel-return";  // replay re-executes to it: no state logged, user mode
      cpl = 3;
    }
    // NULL for a blob of another format, or one that does not decode: the
    // export lists what the log holds and does not judge it (replay does).
    if (stop.vcpu_state_format == vmm::kVcpuStateFormat) {
      try {
        librr::ByteReader in(stop.vcpu_state, "async vCPU state");
        const vmm::VcpuState state = vmm::VcpuState::load(in);
        rip = state.regs.rip;
        cpl = state.sregs.cs.selector & 3;
      } catch (const librr::Error&) {
      }
    }
    async_positions_.run(index, stop.pos.to_string(), stop.pos.landmark, stop.pos.async_seq,
                         stop.vcpu_state_format, uint64_t{stop.vcpu_state.size()}, kind,
                         reset_landmark, pages, bytes, rip, cpl);
  }

  void write(uint64_t index, const librr::Input& input) {
    const std::span<const uint8_t> data(input.data);
    inputs_.run(index, input.channel, input.pos.to_string(), input.pos.landmark,
                input.pos.async_seq, uint64_t{data.size()}, data);
    if (input.channel == librr::channels::kNet0) write_frame(index, input.pos, data);
  }

  void write(uint64_t index, const librr::StateDigest& digest) {
    state_digests_.run(index, digest.pos.to_string(), digest.pos.landmark, digest.pos.async_seq,
                       librr::to_hex(digest.registers), librr::to_hex(digest.memory),
                       digest.detail);
  }

  void write(uint64_t, const librr::CheckpointRef&) {}   // the checkpoints table joins the manifest
  void write(uint64_t, const librr::EndOfRecording&) {}  // summarized in `recording`

 private:
  void write_frame(uint64_t index, const librr::Position& pos, std::span<const uint8_t> frame) {
    std::optional<std::string> dst, src, type_name;
    std::optional<uint16_t> type;
    if (frame.size() >= kEthernetHeaderBytes) {
      dst = format_mac(frame.subspan<0, 6>());
      src = format_mac(frame.subspan<6, 6>());
      type = big_endian16(frame, 12);
      // An 802.1Q tag puts the real EtherType 4 bytes further on.
      if (*type == kEthertypeVlan && frame.size() >= kEthernetHeaderBytes + 4)
        type = big_endian16(frame, 16);
      type_name = ethertype_name(*type);
    }
    frames_.run(index, pos.to_string(), pos.landmark, pos.async_seq, uint64_t{frame.size()}, dst,
                src, type ? std::optional<unsigned>(*type) : std::nullopt, type_name);
  }

  Statement interrupts_, async_positions_, inputs_, frames_, state_digests_;
};

uint64_t indexed_record_total(const librr::LogReader& reader) {
  const auto& chunks = reader.chunk_index();
  return chunks.empty() ? 0 : chunks.back().first_record_index + chunks.back().record_count;
}

// A killed recorder leaves a log whose every complete chunk is sound: that
// prefix is worth exporting. Anything else means the log was damaged.
bool is_usable_prefix(librr::LogProblemKind kind) {
  return kind == librr::LogProblemKind::missing_end || kind == librr::LogProblemKind::torn_tail;
}

}  // namespace

std::string format_mac(std::span<const uint8_t, 6> mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5]);
}

LogSummary export_log_tables(Database& db, const std::filesystem::path& log_path,
                             const std::optional<librr::Key>& key) {
  librr::LogReaderOptions options;
  options.key = key;
  options.write_index = false;  // exporting must not modify the recording
  std::optional<librr::LogReader> reader;
  try {
    reader.emplace(log_path, options);
  } catch (const librr::LogFormatError& e) {
    throw RecordingProblem(fmt::format("log damaged: {} at chunk 0 (offset {}): {}",
                                       librr::log_problem_kind_name(e.kind()), e.offset(),
                                       e.what()));
  }
  LogSummary summary;
  summary.info = reader->info();
  LogTableWriter writer(db);
  ProgressBar progress("export: log", indexed_record_total(*reader), "records");
  while (std::optional<librr::Event> event = reader->next()) {
    const uint64_t index = reader->next_record_index() - 1;
    const librr::Position& pos = librr::event_position(*event);
    if (!summary.first) summary.first = pos;
    summary.last = pos;
    ++summary.counts[static_cast<size_t>(librr::event_type(*event)) - 1];
    ++summary.records;
    if (const auto* end = std::get_if<librr::EndOfRecording>(&*event)) summary.end = *end;
    if (const auto* ref = std::get_if<librr::CheckpointRef>(&*event))
      summary.checkpoint_refs[ref->file_name] = ref->pos;
    std::visit([&](const auto& record) { writer.write(index, record); }, *event);
    progress.update(summary.records);
  }
  progress.finish();
  if (const auto& problem = reader->problem()) {
    if (!is_usable_prefix(problem->kind))
      throw RecordingProblem(
          fmt::format("log damaged: {} ({})", problem->to_string(), log_path.string()));
    summary.cut_short = problem;
  }
  // Chunks that were read completely: every chunk for a sound log, the
  // valid prefix for a cut-short one.
  summary.chunks = 0;
  for (const librr::ChunkIndexEntry& chunk : reader->chunk_index())
    if (chunk.first_record_index + chunk.record_count <= summary.records) ++summary.chunks;
  return summary;
}

}  // namespace analyzer::sql
