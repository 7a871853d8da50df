#include "replay/replay_session.h"

#include <fmt/format.h>

#include <cstring>

#include "net/cooperation.h"
#include "replay/hardware_breakpoints.h"
#include "replay/kernel_return_stop.h"
#include "replay/return_to_user_step.h"
#include "replay/searched_position.h"
#include "replay/state_digest.h"

namespace vmm {

ReplaySession::ReplaySession(Machine& machine, VirtualClock& clock, librr::Replayer& replayer,
                             Timeline& timeline, ReplayRules rules)
    : machine_(machine),
      clock_(clock),
      replayer_(replayer),
      timeline_(timeline),
      rules_(rules),
      shadow_(machine.memory()),
      net_input_(machine, replayer, timeline) {}

const librr::Event* ReplaySession::next_at_position() {
  const librr::Event* next = replayer_.peek();
  if (next && librr::event_position(*next) == timeline_.position()) return next;
  return nullptr;
}

// Twin of RecordSession::set_clock (logged samples only; idle skips are derived).
bool ReplaySession::apply_clock_if_next(std::optional<uint64_t> before_deadline) {
  const librr::Event* next = next_at_position();
  const auto* input = next ? std::get_if<librr::Input>(next) : nullptr;
  if (!input || input->channel != librr::channels::kClock) return false;
  const uint64_t value = librr::decode_clock_input(input->data);
  if (before_deadline && value >= *before_deadline) return false;
  replayer_.take_at(timeline_.position());
  clock_.advance_to(value);
  machine_.advance_timed_devices();
  return true;
}

// Twin of RecordSession::clock_at_async_stop.
void ReplaySession::clock_at_async_stop() {
  if (apply_clock_if_next(std::nullopt) || !rules_.stop_clock_from_deadline) return;
  const uint64_t deadline = machine_.next_deadline();
  if (deadline == TimedDevice::kNoDeadline) return;
  clock_.advance_to(deadline);
  machine_.advance_timed_devices();
}

void ReplaySession::check_digest_if_next() {
  const librr::Event* next = next_at_position();
  const auto* expected = next ? std::get_if<librr::StateDigest>(next) : nullptr;
  if (!expected) return;
  const librr::StateDigest actual =
      compute_state_digest(machine_, timeline_.position(), rules_.memory_digest);
  const std::string what = describe_digest_difference(*expected, actual);
  if (!what.empty())
    throw librr::Divergence(timeline_.position(),
                            what + " differ from the recording's state digest");
  ++outcome_.digests_checked;
  replayer_.take_at(timeline_.position());
}

bool ReplaySession::end_if_next() {
  check_digest_if_next();
  const librr::Event* next = next_at_position();
  const auto* end = next ? std::get_if<librr::EndOfRecording>(next) : nullptr;
  if (!end) return false;
  outcome_.faithful = true;
  outcome_.message = "replayed to the end of the recording (" + end->reason + ")";
  outcome_.guest_exit_status = end->exit_status;
  replayer_.take_at(timeline_.position());
  done_ = true;
  return true;
}

// Twin of RecordSession::try_deliver_interrupt.
void ReplaySession::check_interrupt_delivery() {
  const bool deliverable = machine_.interrupt_deliverable();
  const librr::Event* next = next_at_position();
  const auto* logged = next ? std::get_if<librr::InterruptDelivery>(next) : nullptr;
  if (logged) {
    if (!deliverable)
      throw librr::Divergence(
          timeline_.position(),
          fmt::format("the log delivers vector {:#x} here, but the machine has no interrupt it "
                      "can deliver (pending={}, IF={})",
                      logged->vector, machine_.pic().has_pending_interrupt(),
                      machine_.run_state().if_flag));
    const uint8_t vector = machine_.inject_interrupt();
    if (vector != logged->vector)
      throw librr::Divergence(
          timeline_.position(),
          fmt::format("the machine delivers vector {:#x}, the log {:#x}", vector, logged->vector));
    replayer_.take_at(timeline_.position());
    ++outcome_.interrupts;
  } else if (deliverable) {
    throw librr::Divergence(
        timeline_.position(),
        "the machine has an interrupt to deliver here, but the log delivers none");
  }
}

// The next record if it is the asynchronous stop right after the current
// position (vCPU state format checked).
const librr::AsyncPosition* ReplaySession::next_async_stop() {
  const librr::Event* next = replayer_.peek();
  const auto* async = next ? std::get_if<librr::AsyncPosition>(next) : nullptr;
  librr::Position expected = timeline_.position();
  ++expected.async_seq;
  if (!async || async->pos != expected) return nullptr;
  if (async->vcpu_state_format != kVcpuStateFormat)
    throw librr::FormatError(fmt::format("async position {}: vCPU state format {} (expected {})",
                                         async->pos.to_string(), async->vcpu_state_format,
                                         kVcpuStateFormat));
  return async;
}

// Twin of RecordSession::at_async_stop, where the vCPU stands at the stop:
// the recorded state goes in (for an installed stop, with its memory delta,
// instead of re-executing the stretch since the last landmark).
void ReplaySession::enter_async_stop(const librr::AsyncPosition& async) {
  const auto* delta = std::get_if<librr::MemoryDelta>(&async.memory);
  if (delta && delta->base == librr::DeltaBase::return_to_user)
    reach_return_to_user_base(async, *delta);
  timeline_.enter_async_stop();
  machine_.settle_vcpu();  // finish the landmark's PIO/MMIO read before replacing registers
  // A kernel-return stop or a searched stop of format 2.9 logs no state: the
  // vCPU got there by re-execution (and for a PagesDigest stop the logged
  // state is the one it holds).
  if (librr::logs_vcpu_state(async)) {
    librr::ByteReader in(async.vcpu_state, "async vCPU state");
    machine_.restore_vcpu_state(VcpuState::load(in));
    in.expect_end();
  }
  if (delta) shadow_.apply(*delta, async.pos);
  machine_.settle_vcpu();  // refresh IF / interrupt-shadow flags from the installed state
  replayer_.take_at(timeline_.position());
  ++outcome_.async_positions;
  check_digest_if_next();

  clock_at_async_stop();
  machine_.uart().pull_input();
  outcome_.net_frames += net_input_.deliver_logged();
}

bool ReplaySession::install_async_position_if_next() {
  const librr::AsyncPosition* async = next_async_stop();
  // The installed kinds; the others are reached by re-execution.
  if (!async || !(std::holds_alternative<librr::MemoryDelta>(async->memory) ||
                  std::holds_alternative<librr::MemoryDigest>(async->memory)))
    return false;
  enter_async_stop(*async);
  return true;
}

// A stop whose delta is based on memory right after the kernel's return to
// user mode after the stretch's last counted kernel entry (or the position,
// with none): re-execute to there (run_to_kernel_return), as the recorder's
// own re-run did, unless an analyzer stepping through the stretch kept that
// memory on the way. Twin of RecordSession::delta_from_return_to_user.
void ReplaySession::reach_return_to_user_base(const librr::AsyncPosition& async,
                                              const librr::MemoryDelta& delta) {
  keep_return_to_user_base_if_here(async);  // an analyzer's walk stops on the return
  if (shadow_.holds_preimages_for(async.pos)) return;
  const librr::CodeArrivals entries = async.kernel_entries.value_or(librr::CodeArrivals{});
  const std::string stop = fmt::format(
      "the stop {} (its memory based on the return to user mode through {:#x} after "
      "{} kernel entries)",
      async.pos.to_string(), delta.return_rip, entries.count);
  // Counted from the position: an analyzer that stepped into the stretch and
  // did not stand on that return (its walk does) cannot tell where it is.
  if (stepped_at_ == timeline_.position() && (entries.count > 0 || current_cpl(machine_) == 3))
    throw librr::Error(
        fmt::format("the replay stepped into the stretch before {} without "
                    "standing on that return; replay from {} again",
                    stop, timeline_.position().to_string()));
  machine_.settle_vcpu();  // complete the landmark's PIO/MMIO read: registers are final
  const KernelReturnSearch result = run_to_kernel_return(machine_, entries, delta.return_rip);
  if (result != KernelReturnSearch::kReached) throw_kernel_return_missed(result, stop);
}

// Before executing an instruction of the stretch before such a stop: where
// the vCPU stands on the kernel's return the delta names, memory now may be
// its base, the last such return before the stop (the recorder made sure no
// counted entry, hence no return through it, comes between them), so it is
// kept each time.
void ReplaySession::keep_return_to_user_base_if_here(const librr::AsyncPosition& async) {
  const auto* delta = std::get_if<librr::MemoryDelta>(&async.memory);
  if (!delta || delta->base != librr::DeltaBase::return_to_user ||
      machine_.vcpu().get_regs().rip != delta->return_rip || !at_return_to_user(machine_))
    return;
  shadow_.keep_return_to_user_preimages(async, timeline_.position());
}

// A searched stop (searched_position.h): re-execute the stretch up to it.
bool ReplaySession::reach_searched_position_if_next() {
  const librr::AsyncPosition* async = next_async_stop();
  const std::optional<SearchTarget> target = async ? SearchTarget::of(*async) : std::nullopt;
  if (!target) return false;
  machine_.settle_vcpu();  // complete the landmark's PIO/MMIO read: registers are final
  written_.restart();      // the search starts at the previous position
  switch (run_to_searched_stop(machine_, *target, outcome_.search_hits, &written_)) {
    case SearchResult::kFound:
      ++outcome_.searched_positions;
      enter_async_stop(*async);
      return true;
    case SearchResult::kLandmark:
      throw librr::Divergence(
          timeline_.position(),
          fmt::format("the guest reached its next landmark ({}) before the searched stop {} at "
                      "RIP {:#x}: no breakpoint hit there had the recorded registers and pages",
                      machine_.describe_rip(), async->pos.to_string(), target->rip));
    case SearchResult::kTooManyHits:
      throw librr::Divergence(
          timeline_.position(),
          fmt::format("no breakpoint hit at RIP {:#x} among the first {} had the recorded "
                      "registers and pages of the searched stop {} (the recorder searches only "
                      "stretches shorter than that)",
                      target->rip, kMaxSearchHits, async->pos.to_string()));
    case SearchResult::kTimedOut:
      throw_reexecution_timed_out(
          fmt::format("the searched stop {} at RIP {:#x}", async->pos.to_string(), target->rip));
    case SearchResult::kTerminal:
      break;
  }
  throw librr::Divergence(timeline_.position(),
                          fmt::format("the machine stopped while searching for the stop {} at RIP "
                                      "{:#x}: exit reason {} at {}",
                                      async->pos.to_string(), target->rip,
                                      machine_.run_state().exit_reason, machine_.describe_rip()));
}

// A re-execution towards `stop` (ReexecutionDeadline) ran out of time.
void ReplaySession::throw_reexecution_timed_out(const std::string& stop) {
  throw librr::Divergence(
      timeline_.position(),
      fmt::format("{} was not reached within {} s of re-execution, nor a landmark (the guest is "
                  "at {})",
                  stop, kReexecutionLimitNs / 1'000'000'000, machine_.describe_rip()));
}

// The vCPU stands right after the return a kernel-return stop names: the
// registers must be the recorded ones.
void ReplaySession::arrive_at_kernel_return(const librr::AsyncPosition& async) {
  const auto& kernel_return = std::get<librr::KernelReturn>(async.memory);
  const kvm_regs regs = machine_.vcpu().get_regs();
  if (!registers_match(regs, kernel_return))
    throw librr::Divergence(
        timeline_.position(),
        fmt::format("at the kernel-return stop {} (the return at {:#x} to user mode at {:#x}) "
                    "the general registers differ from the recording's",
                    async.pos.to_string(), kernel_return.return_rip, regs.rip));
  ++outcome_.kernel_return_stops;
  enter_async_stop(async);
}

// A kernel-return stop (kernel_return_stop.h): re-execute the stretch to it.
// Twin of RecordSession::at_kernel_return.
bool ReplaySession::reach_kernel_return_if_next() {
  const librr::AsyncPosition* async = next_async_stop();
  const auto* kernel_return = async ? std::get_if<librr::KernelReturn>(&async->memory) : nullptr;
  if (!kernel_return) return false;
  machine_.settle_vcpu();  // complete the landmark's PIO/MMIO read: registers are final
  const librr::CodeArrivals& entries = *async->kernel_entries;  // the log format requires it
  const KernelReturnSearch result =
      run_to_kernel_return(machine_, entries, kernel_return->return_rip);
  if (result != KernelReturnSearch::kReached)
    throw_kernel_return_missed(
        result,
        fmt::format("the kernel-return stop {} ({} kernel entries, then the return at {:#x})",
                    async->pos.to_string(), entries.count, kernel_return->return_rip));
  arrive_at_kernel_return(*async);
  return true;
}

// A re-execution towards a kernel's return to user mode (run_to_kernel_return)
// ended otherwise (`result`); `stop` names what it was for.
void ReplaySession::throw_kernel_return_missed(KernelReturnSearch result, const std::string& stop) {
  if (result == KernelReturnSearch::kLandmark)
    throw librr::Divergence(timeline_.position(),
                            fmt::format("the guest reached its next landmark ({}) before {}",
                                        machine_.describe_rip(), stop));
  if (result == KernelReturnSearch::kTimedOut) throw_reexecution_timed_out(stop);
  throw librr::Divergence(
      timeline_.position(),
      fmt::format("the machine stopped on its way to {}: exit reason {} at {}", stop,
                  machine_.run_state().exit_reason, machine_.describe_rip()));
}

bool ReplaySession::enter_kernel_return_stop_here() {
  const librr::AsyncPosition* async = next_async_stop();
  const auto* kernel_return = async ? std::get_if<librr::KernelReturn>(&async->memory) : nullptr;
  if (!kernel_return) return false;
  if (machine_.vcpu().get_regs().rip != kernel_return->return_rip || !at_return_to_user(machine_) ||
      !step_return_to_user(machine_))
    throw librr::Divergence(
        timeline_.position(),
        fmt::format("the kernel-return stop {} follows the return at {:#x}, but the vCPU is at {}",
                    async->pos.to_string(), kernel_return->return_rip, machine_.describe_rip()));
  arrive_at_kernel_return(*async);
  return true;
}

// Twin of RecordSession::at_landmark.
void ReplaySession::at_landmark() {
  apply_clock_if_next(std::nullopt);
  machine_.dispatch_synchronous_exit();
  if (machine_.take_pending_result()) {
    if (!end_if_next())
      throw librr::Divergence(timeline_.position(),
                              "the guest ended here, but the recording goes on");
    return;
  }
  machine_.uart().pull_input();
  outcome_.net_frames += net_input_.deliver_logged();
  check_digest_if_next();
}

// Twin of RecordSession::at_halt: logged clock samples before the next
// deadline and logged input, otherwise the idle skip to the deadline.
void ReplaySession::at_halt() {
  machine_.dispatch_synchronous_exit();
  for (;;) {
    machine_.advance_timed_devices();
    if (machine_.pic().has_pending_interrupt()) return;
    const uint64_t deadline = machine_.next_deadline();
    const bool has_deadline = deadline != TimedDevice::kNoDeadline;
    const librr::Event* next = next_at_position();
    const auto* input = next ? std::get_if<librr::Input>(next) : nullptr;
    const bool clock_first = input && input->channel == librr::channels::kClock &&
                             (!has_deadline || librr::decode_clock_input(input->data) < deadline);
    const bool input_first = input && (input->channel == librr::channels::kSerial0 ||
                                       net::is_received_frame_channel(input->channel));
    if (clock_first || input_first) {
      apply_clock_if_next(has_deadline ? std::optional(deadline) : std::nullopt);
      machine_.uart().pull_input();
      outcome_.net_frames += net_input_.deliver_logged();
      continue;
    }
    if (end_if_next()) return;
    if (!has_deadline)
      throw librr::Divergence(
          timeline_.position(),
          "the guest halted with nothing to wake it, but the recording goes on");
    clock_.advance_to(deadline);
  }
}

void ReplaySession::step(bool delivered_already) {
  if (!delivered_already && end_if_next()) return;
  if (!replayer_.peek()) {
    // The log ended without EndOfRecording: a recording cut short (kill -9).
    // Checked before the interrupt check: the cut may fall between an async
    // position and the delivery the recorder logged right after it.
    outcome_.faithful = true;
    outcome_.log_terminated = false;
    outcome_.message = "the recording was cut short; replayed faithfully up to its last record";
    done_ = true;
    return;
  }
  if (!delivered_already) check_interrupt_delivery();
  if (reach_searched_position_if_next() || reach_kernel_return_if_next() ||
      install_async_position_if_next())
    return;
  Machine::Exit exit;
  do {
    exit = machine_.enter_guest();
  } while (exit.kind == Machine::Exit::Kind::kSpurious ||
           exit.kind == Machine::Exit::Kind::kAsynchronous);
  if (exit.kind == Machine::Exit::Kind::kTerminal) {
    if (!end_if_next())
      throw librr::Divergence(timeline_.position(), "the machine stopped: " + exit.result.message);
    return;
  }
  timeline_.enter_landmark();
  replayer_.check_nothing_before(timeline_.position());
  if (machine_.run_state().exit_reason == KVM_EXIT_HLT)
    at_halt();
  else
    at_landmark();
}

// The vCPU stands at the next logged asynchronous stop: its general
// registers are the recorded ones (for a searched stop, its pages too).
// Or the stop cut the rep-string instruction at RIP mid-way (the recorder's
// kick came between two of its iterations): same RIP, the same registers but
// for the count and the string pointers, fewer iterations left. Single steps
// cannot stop there (the host's runs such an instruction in chunks: the
// probe measured 2 steps for rep stosb x5 at CPL0), so that stop counts as
// reached here and is installed, as advance() would. Seen as a
// load-dependent failure of a stepping test on hello (its kernel clears
// memory with rep stos).
const librr::AsyncPosition* ReplaySession::at_next_async_stop() {
  const librr::AsyncPosition* async = next_async_stop();
  if (!async) return nullptr;
  if (const auto* kernel_return = std::get_if<librr::KernelReturn>(&async->memory)) {
    // Right after the return: user mode, the recorded registers.
    const bool there =
        current_cpl(machine_) == 3 && registers_match(machine_.vcpu().get_regs(), *kernel_return);
    return there ? async : nullptr;
  }
  if (const std::optional<SearchTarget> target = SearchTarget::of(*async))
    return at_searched_stop(machine_, *target, &written_) ? async : nullptr;
  librr::ByteReader in(async->vcpu_state, "async vCPU state");
  kvm_regs recorded = VcpuState::load(in).regs;
  const kvm_regs now = machine_.vcpu().get_regs();
  if (std::memcmp(&recorded, &now, sizeof now) == 0) return async;
  if (recorded.rip != now.rip || recorded.rcx >= now.rcx || !at_rep_string_instruction(machine_))
    return nullptr;
  recorded.rcx = now.rcx;
  recorded.rsi = now.rsi;
  recorded.rdi = now.rdi;
  return std::memcmp(&recorded, &now, sizeof now) == 0 ? async : nullptr;
}

std::optional<ReplaySession::InstructionOutcome> ReplaySession::before_executing(
    bool first_since_position) {
  if (done_) return InstructionOutcome::kEnded;
  if (first_since_position) {
    if (end_if_next()) return InstructionOutcome::kEnded;
    check_interrupt_delivery();
    machine_.settle_vcpu();  // complete the landmark's PIO/MMIO read: registers are final
    written_.restart();      // a searched stop's implied pages are written from here on
  }
  if (!replayer_.peek()) {
    outcome_.faithful = true;
    outcome_.log_terminated = false;
    done_ = true;
    return InstructionOutcome::kEnded;
  }
  if (const librr::AsyncPosition* async = at_next_async_stop()) {
    enter_async_stop(*async);
    return InstructionOutcome::kReachedAsyncStop;
  }
  // The stop's memory delta may be based on memory as it is here, which the
  // instructions about to run change.
  if (const auto* async = std::get_if<librr::AsyncPosition>(replayer_.peek())) {
    shadow_.keep_preimages(*async, timeline_.position());
    keep_return_to_user_base_if_here(*async);
  }
  return std::nullopt;
}

ReplaySession::InstructionOutcome ReplaySession::handle_landmark_reached() {
  timeline_.enter_landmark();
  replayer_.check_nothing_before(timeline_.position());
  if (machine_.run_state().exit_reason == KVM_EXIT_HLT)
    at_halt();
  else
    at_landmark();
  return done_ ? InstructionOutcome::kEnded : InstructionOutcome::kReachedLandmark;
}

ReplaySession::InstructionOutcome ReplaySession::step_instruction(InstructionStepper& stepper,
                                                                  bool first_since_position) {
  if (auto outcome = before_executing(first_since_position)) return *outcome;
  // A step that may run several instructions could pass the logged stop;
  // its state is in the log, so install it here instead (the stretch up to
  // it is then not visited instruction by instruction).
  if (!stepper.exact_here() && install_async_position_if_next())
    return InstructionOutcome::kReachedAsyncStop;
  // The next instruction exits to the VMM and so ends the stretch: a stop the
  // log still holds in it could not be reached one instruction at a time (an
  // interrupt-window stop comes at no particular instruction on these hosts:
  // seen under load as a stepping test on hello passing its stop), so it is
  // installed here, as advance() would.
  if (next_async_stop() && at_port_or_halt_instruction(machine_) &&
      install_async_position_if_next())
    return InstructionOutcome::kReachedAsyncStop;
  stepped_at_ = timeline_.position();
  if (stepper.step() == InstructionStepper::Result::kStepped) return InstructionOutcome::kStepped;
  return handle_landmark_reached();
}

ReplaySession::InstructionOutcome ReplaySession::run_to_debug_exit(bool first_since_position) {
  if (auto outcome = before_executing(first_since_position)) return *outcome;
  stepped_at_ = timeline_.position();
  Machine::Exit exit;
  do {
    exit = machine_.enter_guest();
  } while (exit.kind == Machine::Exit::Kind::kSpurious ||
           exit.kind == Machine::Exit::Kind::kAsynchronous);
  if (exit.kind == Machine::Exit::Kind::kTerminal) {
    if (machine_.run_state().exit_reason == KVM_EXIT_DEBUG) return InstructionOutcome::kDebugExit;
    if (!end_if_next())
      throw librr::Divergence(timeline_.position(), "the machine stopped: " + exit.result.message);
    return InstructionOutcome::kEnded;
  }
  return handle_landmark_reached();
}

bool ReplaySession::advance(bool delivered_already) {
  if (!done_) step(delivered_already);
  outcome_.end = timeline_.position();
  return !done_;
}

ReplayOutcome ReplaySession::run() {
  try {
    while (!done_) step();
  } catch (const librr::Divergence& divergence) {
    outcome_.faithful = false;
    outcome_.message = divergence.what();
  }
  outcome_.end = timeline_.position();
  return outcome_;
}

}  // namespace vmm
