#include "travel/time_traveler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "librr/log.h"
#include "machine/vcpu_state.h"
#include "replay/instruction_stepper.h"
#include "travel/time_traveler_impl.h"

namespace analyzer {
namespace {

using Clock = std::chrono::steady_clock;

// The whole log is checked before any replay: a damaged chunk is reported
// with its index and offset up front instead of ending a replay early. Its
// last record is the end of the recording.
librr::Position check_log_and_find_end(const vmm::ReplayMachine& replay) {
  librr::LogReaderOptions log_options;
  log_options.key = replay.key();
  librr::LogReader reader(replay.recording().log_path(), log_options);
  const librr::VerifyReport report = reader.verify();
  if (report.problem && report.problem->kind != librr::LogProblemKind::missing_end)
    throw vmm::RecordingDamaged(fmt::format("log {} is damaged: {}",
                                            replay.recording().log_path().string(),
                                            report.problem->to_string()));
  return report.last.value_or(librr::Position{});
}

librr::Position base_of(const librr::Position& p) { return {p.landmark, p.async_seq, 0}; }

}  // namespace

TimeTraveler::TimeTraveler(const std::filesystem::path& recording, TravelOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  vmm::ReplayMachineOptions machine_options;
  machine_options.key = s.options.key;
  machine_options.force = s.options.force;
  machine_options.warn = s.options.warn;
  machine_options.serial_output = &s.console;
  s.replay = std::make_unique<vmm::ReplayMachine>(recording, std::move(machine_options));
  s.end = check_log_and_find_end(*s.replay);
  const vmm::GuestMemory ram = s.replay->machine().memory();
  s.memory.emplace(std::span<const uint8_t>(ram.host_base(), ram.size()));
  s.checkpoints.capture(*s.replay, 0);  // the start: every backward seek can begin here
  s.last_progress = Clock::now();
  s.print_stats = std::getenv("RR_TRAVEL_STATS") != nullptr;
  s.last_stats_print = s.last_progress;
}

TimeTraveler::~TimeTraveler() {
  if (impl_->print_stats)
    fmt::print(stderr, "rr-analyze: travel stats: {}\n", impl_->stats.to_string());
}

std::string TravelStats::to_string() const {
  std::string out;
  const std::pair<const char*, const Counter*> counters[] = {
      {"advances", &advances}, {"debug_runs", &debug_runs}, {"debug_exits", &debug_exits},
      {"steps", &steps},       {"restores", &restores},     {"captures", &captures},
      {"resolves", &resolves}};
  for (const auto& [name, counter] : counters)
    out += fmt::format("{}{} {} ({:.2f} s)", out.empty() ? "" : ", ", name, counter->count,
                       counter->seconds);
  return out;
}

librr::Position TimeTraveler::position() const {
  impl_->make_exact();
  return impl_->position;
}

PositionName TimeTraveler::here() const {
  return impl_->hit_name ? *impl_->hit_name : PositionName(impl_->position);
}

std::string PositionName::to_string() const {
  std::string text = base.to_string();
  for (const PcArrival& link : arrivals) text += fmt::format("@{:#x}#{}", link.pc, link.ordinal);
  return text;
}
librr::Position TimeTraveler::end() const { return impl_->end; }
size_t TimeTraveler::checkpoint_count() const { return impl_->checkpoints.size(); }
uint64_t TimeTraveler::checkpoint_bytes() const { return impl_->checkpoints.bytes(); }

const vmm::VcpuState& TimeTraveler::Impl::current_vcpu() const {
  if (!vcpu) {
    replay->machine().settle_vcpu();  // a pending PIO/MMIO read lands in the registers
    vcpu = replay->machine().save_vcpu_state();
  }
  return *vcpu;
}

void TimeTraveler::set_interrupt_check(std::function<bool()> check) {
  impl_->interrupt_check = std::move(check);
}

bool TimeTraveler::Impl::interrupt_requested() {
  if (!interrupt_check) return false;
  const auto now = Clock::now();
  if (now - last_interrupt_check < std::chrono::milliseconds(5)) return false;
  last_interrupt_check = now;
  return interrupt_check();
}

uint64_t TimeTraveler::Impl::read_rip() const { return current_vcpu().regs.rip; }

const vmm::VcpuState& TimeTraveler::vcpu() const { return impl_->current_vcpu(); }
const PhysicalMemory& TimeTraveler::memory() const { return *impl_->memory; }

AddressSpace TimeTraveler::address_space() const {
  const kvm_sregs& sregs = impl_->current_vcpu().sregs;
  constexpr uint64_t kCr0Paging = 1ull << 31;
  return AddressSpace(*impl_->memory, sregs.cr3, (sregs.cr0 & kCr0Paging) != 0);
}

vmm::InstructionStepper& TimeTraveler::Impl::instruction_stepper() {
  if (!stepper) stepper.emplace(replay->machine(), vmm::SingleStepSupport::from_probe());
  return *stepper;
}

void TimeTraveler::Impl::restore(const Checkpoint& checkpoint) {
  const TimedScope timed(stats.restores);
  CheckpointStore::restore(checkpoint, *replay);
  position = checkpoint.position;
  replay_seconds = checkpoint.replay_seconds;
  machine_past_position = false;
  hit_name.reset();
  moved();
}

bool TimeTraveler::Impl::advance() {
  vmm::ReplaySession& session = replay->session();
  const auto started = Clock::now();
  std::optional<TimedScope> timed(stats.advances);
  hit_name.reset();
  const bool more = session.advance(/*delivered_already=*/position.steps > 0);
  position = replay->timeline().position();
  moved();
  timed.reset();
  if (!more) {
    replay_seconds += std::chrono::duration<double>(Clock::now() - started).count();
    // A log that stops at a damaged chunk ends the replay like a cut-short
    // recording would; say which chunk.
    const auto& problem = replay->replayer().problem();
    if (problem && problem->kind != librr::LogProblemKind::missing_end)
      throw vmm::RecordingDamaged("log damaged: " + problem->to_string());
    return false;
  }
  reached_base(started);
  return true;
}

void TimeTraveler::Impl::reached_base(Clock::time_point work_started) {
  const auto now = Clock::now();
  replay_seconds += std::chrono::duration<double>(now - work_started).count();
  const Checkpoint* before = checkpoints.at_or_before(position);
  if (options.checkpoint_memory_budget > 0 && before && before->position != position &&
      replay_seconds - before->replay_seconds >= options.checkpoint_interval_seconds) {
    const TimedScope timed(stats.captures);
    checkpoints.capture(*replay, replay_seconds);
    checkpoints.thin_to(options.checkpoint_memory_budget);
  }
  if (print_stats && now - last_stats_print > std::chrono::seconds(10)) {
    last_stats_print = now;
    fmt::print(stderr, "rr-analyze: travel stats at {}: {}\n", position.to_string(),
               stats.to_string());
  }
  if (options.progress && now - last_progress > std::chrono::milliseconds(100)) {
    last_progress = now;
    options.progress(end.landmark ? static_cast<double>(position.landmark) /
                                        static_cast<double>(end.landmark)
                                  : 1.0);
  }
}

bool TimeTraveler::Impl::step_once() {
  using Outcome = vmm::ReplaySession::InstructionOutcome;
  const TimedScope timed(stats.steps);
  hit_name.reset();
  const librr::CodeArrivals* entries = kernel_entries_of_next_stop();
  const uint64_t rip_before =
      !entries ? 0 : (position.steps == 0 ? read_rip() : replay->machine().vcpu().get_regs().rip);
  if (entries && position.steps == 0)
    kernel_entries_stepped =
        std::ranges::find(entries->addresses, rip_before) != entries->addresses.end() ? 1 : 0;
  const Outcome outcome =
      replay->session().step_instruction(instruction_stepper(), position.steps == 0);
  moved();
  if (outcome == Outcome::kStepped) {
    ++position.steps;
    const uint64_t rip = replay->machine().vcpu().get_regs().rip;
    // A step over an instruction that faults or traps into the kernel, from
    // user or kernel code, ends after the handler's first instruction.
    if (entries && entry_arrived_at(entries->addresses, rip_before, rip, /*stepped=*/true))
      ++kernel_entries_stepped;
    return true;
  }
  position = replay->timeline().position();
  return outcome != Outcome::kEnded;
}

void TimeTraveler::Impl::reach_base(const librr::Position& base) {
  const Checkpoint* checkpoint = checkpoints.at_or_before(base);
  // Stepped into a stretch whose stop replay finds by what happens after
  // the position (kernel entries counted from there, the first return to
  // user mode): advancing from here would count from here. Seen as a
  // divergence at a kernel-return stop after steps that passed a system
  // call of the stretch (TravelSteps.EveryStepInANativeLoopIsOneInstruction).
  const bool stepped_into_counted_stretch =
      position.steps > 0 && base_of(position) < base && next_stop_counts_from_its_position();
  // Backward, or a checkpoint lies between here and there: restore it.
  if (position > base || machine_past_position || stepped_into_counted_stretch ||
      (checkpoint && checkpoint->position > position))
    restore(*checkpoint);
  while (base_of(position) < base) {
    if (!advance() && base_of(position) < base)
      throw PositionPastEnd(fmt::format("{} lies past the end of the recording, which ends at {}",
                                        base.to_string(), end.to_string()));
  }
  if (base_of(position) != base)
    throw librr::Error(fmt::format(
        "{} does not exist: landmark {} has no asynchronous stop {} (the replay goes from there "
        "to {})",
        base.to_string(), base.landmark, base.async_seq, position.to_string()));
}

// The next logged stop is a kernel-return stop, or installed on memory as of
// the kernel's return to user mode: replay reaches either by re-executing
// from the position before it (kernel_return_stop.h).
bool TimeTraveler::Impl::next_stop_counts_from_its_position() const {
  const librr::Event* next = replay->replayer().peek();
  const auto* async = next ? std::get_if<librr::AsyncPosition>(next) : nullptr;
  if (!async) return false;
  const auto* delta = std::get_if<librr::MemoryDelta>(&async->memory);
  return std::holds_alternative<librr::KernelReturn>(async->memory) ||
         (delta && delta->base == librr::DeltaBase::return_to_user);
}

void TimeTraveler::seek(const librr::Position& target) { impl_->seek_exact(target); }
void TimeTraveler::seek_named(const PositionName& target) { impl_->seek_named(target); }

void TimeTraveler::Impl::seek_exact(const librr::Position& target) {
  Impl& s = *this;
  s.hit_name.reset();  // the exact name from here on
  if (target > s.end)
    throw PositionPastEnd(fmt::format("{} lies past the end of the recording, which ends at {}",
                                      target.to_string(), s.end.to_string()));
  if (s.position == target && !s.machine_past_position) return;
  const librr::Position base = base_of(target);
  // Mid-steps of the same (L, a) and before the target: just step on.
  if (s.machine_past_position || !(base_of(s.position) == base && s.position.steps <= target.steps))
    s.reach_base(base);
  while (s.position.steps < target.steps) {
    const librr::Position before = s.position;
    if (!s.step_once() || s.position.steps == 0)
      throw librr::Error(fmt::format(
          "{} does not exist: the instruction after {} reaches {} (the next logged position)",
          target.to_string(), before.to_string(), s.position.to_string()));
  }
}

}  // namespace analyzer
