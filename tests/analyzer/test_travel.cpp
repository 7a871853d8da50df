// TimeTraveler on real recordings of real KVM guests: seeks by different
// paths agree, single steps at CPL0 and CPL3, pc#hit and irq:n positions.
#include <fmt/format.h>

#include <cstring>
#include <map>

#include "librr/log.h"
#include "librr/recording.h"
#include "machine/vcpu_state.h"
#include "test_travel_support.h"
#include "travel/position_spec.h"
#include "travel/time_traveler.h"

namespace {

using namespace travel_test;
using analyzer::PositionSpec;
using analyzer::TimeTraveler;
using analyzer::TravelOptions;

TravelOptions frequent_checkpoints() {
  TravelOptions options;
  // Many checkpoints in a short recording: ticks replays in ~0.03 s on a fast
  // host since state digests hash only non-zero pages (10 ms gave 2-3 there).
  options.checkpoint_interval_seconds = 0.002;
  options.checkpoint_memory_budget = 256ull << 20;
  return options;
}

struct MachineView {
  kvm_regs regs;
  kvm_sregs sregs;
  std::vector<uint8_t> ram;
};

MachineView view_of(const TimeTraveler& traveler) {
  MachineView view{traveler.vcpu().regs, traveler.vcpu().sregs, {}};
  view.ram.resize(traveler.memory().size());
  EXPECT_TRUE(traveler.memory().read(0, view.ram));
  return view;
}

void expect_same(const MachineView& a, const MachineView& b, const std::string& where) {
  EXPECT_EQ(std::memcmp(&a.regs, &b.regs, sizeof a.regs), 0) << "registers differ at " << where;
  EXPECT_EQ(a.regs.rip, b.regs.rip) << where;
  EXPECT_EQ(a.sregs.cr3, b.sregs.cr3) << where;
  EXPECT_EQ(a.sregs.cs.selector, b.sregs.cs.selector) << where;
  EXPECT_TRUE(a.ram == b.ram) << "guest RAM differs at " << where;
}

int cpl_of(const TimeTraveler& traveler) { return traveler.vcpu().sregs.cs.selector & 3; }

std::vector<librr::Event> log_records(const fs::path& recording) {
  librr::LogReader reader(librr::RecordingDir::open(recording).log_path());
  std::vector<librr::Event> events;
  while (auto event = reader.next()) events.push_back(std::move(*event));
  return events;
}

// An async stop the recorder made while the guest ran at CPL3.
std::optional<librr::Position> async_stop_at_cpl3(const fs::path& recording) {
  for (const librr::Event& event : log_records(recording)) {
    const auto* async = std::get_if<librr::AsyncPosition>(&event);
    if (async && stops_in_user_mode(*async)) return async->pos;
  }
  return std::nullopt;
}

TEST(Travel, LandmarkReachedForwardAndBackwardThroughCheckpointsIsTheSameMachine) {
  SKIP_WITHOUT_KVM();
  const fs::path rec = ticks_recording();
  TimeTraveler forward(rec, {});
  const librr::Position end = forward.end();
  ASSERT_GT(end.landmark, 40u);
  const librr::Position target{end.landmark / 2, 0, 0};
  forward.seek(target);
  const MachineView straight = view_of(forward);

  TimeTraveler around(rec, frequent_checkpoints());
  around.seek({end.landmark - 5, 0, 0});  // past the target, taking checkpoints on the way
  ASSERT_GT(around.checkpoint_count(), 2u);
  around.seek(target);  // backward: restores a checkpoint before the target and replays
  EXPECT_EQ(around.position(), target);
  expect_same(straight, view_of(around), target.to_string());

  // And forward again from a checkpoint onto a later landmark.
  const librr::Position later{end.landmark / 2 + 7, 0, 0};
  forward.seek(later);
  around.seek(later);
  expect_same(view_of(forward), view_of(around), later.to_string());
}

// Restoring a checkpoint while the vCPU stands at an unfinished port read
// once let KVM complete that read into the restored registers: seeks in
// descending order through many checkpoints must match a forward replay.
TEST(Travel, DescendingSeeksThroughCheckpointsMatchAForwardReplay) {
  SKIP_WITHOUT_KVM();
  const fs::path rec = Recordings::get().of("demo", "--guest demo");
  TimeTraveler backward(rec, frequent_checkpoints());
  const uint64_t last = backward.end().landmark;
  backward.seek(backward.end());
  ASSERT_GT(backward.checkpoint_count(), 3u);
  std::vector<librr::Position> targets;
  for (uint64_t i = 5; i >= 1; --i) targets.push_back({last * i / 6, 0, 0});
  std::map<librr::Position, MachineView> seen_backward;
  for (const librr::Position& target : targets) {
    // Leave the vCPU at an unread landmark (reading registers settles it), then go back.
    backward.seek({target.landmark + 40, 0, 0});
    backward.seek(target);
    seen_backward[target] = view_of(backward);
  }
  TimeTraveler forward(rec, {});
  for (auto& [target, view] : seen_backward) {  // ascending
    forward.seek(target);
    expect_same(view, view_of(forward), target.to_string());
  }
}

TEST(Travel, StepsAtCpl0FromALandmarkAgreeWhicheverWayTheyAreReached) {
  SKIP_WITHOUT_KVM();
  const fs::path rec = ticks_recording();
  TimeTraveler traveler(rec, frequent_checkpoints());
  const librr::Position landmark{traveler.end().landmark / 3, 0, 0};
  traveler.seek(landmark);
  ASSERT_EQ(cpl_of(traveler), 0) << "landmarks are the kernel's port I/O";
  const uint64_t rip0 = traveler.vcpu().regs.rip;
  traveler.seek({landmark.landmark, 0, 3});
  EXPECT_EQ(traveler.position(), (librr::Position{landmark.landmark, 0, 3}));
  EXPECT_NE(traveler.vcpu().regs.rip, rip0) << "three instructions were executed";
  const MachineView three = view_of(traveler);

  TimeTraveler other(rec, {});
  other.seek({landmark.landmark, 0, 1});
  ASSERT_EQ(other.step_instruction().kind, analyzer::StopReason::Kind::kStep);
  ASSERT_EQ(other.step_instruction().kind, analyzer::StopReason::Kind::kStep);
  EXPECT_EQ(other.position(), (librr::Position{landmark.landmark, 0, 3}));
  expect_same(three, view_of(other), "L+s3");

  // Backward by one instruction, then the same instruction again.
  traveler.reverse_step_instruction();
  EXPECT_EQ(traveler.position(), (librr::Position{landmark.landmark, 0, 2}));
  traveler.step_instruction();
  expect_same(three, view_of(traveler), "L+s3 after a reverse step");
}

TEST(Travel, StepsAtCpl3FromAnAsyncStopInANativeLoop) {
  SKIP_WITHOUT_KVM();
  const fs::path rec = spin3_recording();
  const auto stop = async_stop_at_cpl3(rec);
  ASSERT_TRUE(stop) << "spin3's timer never stopped the vCPU at CPL3";
  TimeTraveler traveler(rec, {});
  traveler.seek(*stop);
  ASSERT_EQ(cpl_of(traveler), 3);
  // The first step delivers the interrupt logged at the stop; the kernel
  // handles it and returns to the user loop. On kvm_pvm every CPL3 step's #DB
  // is caught at the guest's handler and undone.
  int kernel_steps = 0;
  do {
    ASSERT_EQ(traveler.step_instruction().kind, analyzer::StopReason::Kind::kStep);
    ASSERT_LT(++kernel_steps, 20000) << "the kernel never returned to the user loop";
  } while (cpl_of(traveler) != 3 || traveler.position().steps == 0);
  const librr::Position back_in_user = traveler.position();
  const MachineView at_return = view_of(traveler);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(traveler.step_instruction().kind, analyzer::StopReason::Kind::kStep);
    EXPECT_EQ(cpl_of(traveler), 3) << "still in the user loop";
  }
  EXPECT_NE(std::memcmp(&at_return.regs, &traveler.vcpu().regs, sizeof at_return.regs), 0);
  const MachineView ten = view_of(traveler);
  const librr::Position ten_later{back_in_user.landmark, back_in_user.async_seq,
                                  back_in_user.steps + 10};
  EXPECT_EQ(traveler.position(), ten_later);

  TimeTraveler other(rec, {});
  other.seek({ten_later.landmark, ten_later.async_seq, ten_later.steps - 6});
  for (int i = 0; i < 6; ++i) other.step_instruction();
  expect_same(ten, view_of(other), ten_later.to_string());
}

TEST(Travel, PcHitCountsArrivalsAtAnAddress) {
  SKIP_WITHOUT_KVM();
  const fs::path rec = ticks_recording();
  TimeTraveler traveler(rec, {});
  const uint64_t landmark = traveler.end().landmark / 4;
  traveler.seek({landmark, 0, 0});
  std::vector<std::pair<librr::Position, uint64_t>> trace;
  for (int i = 0; i < 300; ++i) {
    trace.emplace_back(traveler.position(), traveler.vcpu().regs.rip);
    traveler.step_instruction();
  }
  // An address reached at least twice (a loop), and where it was reached the second time.
  std::map<uint64_t, int> seen;
  std::optional<std::pair<librr::Position, uint64_t>> second;
  for (const auto& [position, rip] : trace)
    if (++seen[rip] == 2) {
      second.emplace(position, rip);
      break;
    }
  ASSERT_TRUE(second) << "300 instructions without a repeated address";

  const std::string text = fmt::format("L{}@{:#x}#2", landmark, second->second);
  const PositionSpec spec = PositionSpec::parse(text);
  EXPECT_EQ(spec.to_string(), text);
  TimeTraveler fresh(rec, {});
  analyzer::seek_to(fresh, spec, librr::RecordingDir::open(rec).log_path(), std::nullopt);
  EXPECT_EQ(fresh.vcpu().regs.rip, second->second);
  // Found by steps or by the debug registers (a kernel address): the exact
  // form is the position the steps went through.
  EXPECT_EQ(fresh.position(), second->first);
}

TEST(Travel, IrqNIsWhereTheNthInterruptIsDelivered) {
  SKIP_WITHOUT_KVM();
  const fs::path rec = ticks_recording();
  std::vector<librr::InterruptDelivery> interrupts;
  for (const librr::Event& event : log_records(rec))
    if (const auto* irq = std::get_if<librr::InterruptDelivery>(&event)) interrupts.push_back(*irq);
  ASSERT_GE(interrupts.size(), 5u);
  TimeTraveler traveler(rec, {});
  const fs::path log = librr::RecordingDir::open(rec).log_path();
  const analyzer::PositionName fifth =
      analyzer::seek_to(traveler, PositionSpec::parse("irq:5"), log, std::nullopt);
  EXPECT_EQ(fifth, analyzer::PositionName(interrupts[4].pos));
  EXPECT_THROW(
      analyzer::seek_to(traveler, PositionSpec::parse(fmt::format("irq:{}", interrupts.size() + 1)),
                        log, std::nullopt),
      analyzer::PositionPastEnd);
}

TEST(Travel, PastTheEndSaysWhereTheRecordingEnds) {
  SKIP_WITHOUT_KVM();
  TimeTraveler traveler(ticks_recording(), {});
  const librr::Position end = traveler.end();
  try {
    traveler.seek({end.landmark + 1, 0, 0});
    FAIL() << "seeking past the end succeeded";
  } catch (const analyzer::PositionPastEnd& e) {
    EXPECT_NE(std::string(e.what()).find("ends at " + end.to_string()), std::string::npos)
        << e.what();
  }
  traveler.seek(end);
  EXPECT_EQ(traveler.position(), end);
}

TEST(Travel, PositionSyntax) {
  EXPECT_EQ(PositionSpec::parse("L123").exact, (librr::Position{123, 0, 0}));
  EXPECT_EQ(PositionSpec::parse("L123+a1+s5").exact, (librr::Position{123, 1, 5}));
  EXPECT_EQ(PositionSpec::parse("L123+s40").exact, (librr::Position{123, 0, 40}));
  const PositionSpec hit = PositionSpec::parse("L123@0xffffffff81000000#3");
  EXPECT_EQ(hit.kind, PositionSpec::Kind::kPcHit);
  ASSERT_EQ(hit.arrivals.size(), 1u);
  EXPECT_EQ(hit.arrivals[0].pc, 0xffffffff81000000ull);
  EXPECT_EQ(hit.arrivals[0].ordinal, 3u);
  EXPECT_EQ(PositionSpec::parse("L7@0x10").arrivals.at(0).ordinal, 1u);
  // Breakpoint hits' names: any exact base, links counting after each other.
  const PositionSpec chain = PositionSpec::parse("L12+a1+s3@0x101060#2@0x1010a0");
  EXPECT_EQ(chain.exact, (librr::Position{12, 1, 3}));
  EXPECT_EQ(chain.arrivals, (std::vector<analyzer::PcArrival>{{0x101060, 2}, {0x1010a0, 1}}));
  EXPECT_EQ(chain.to_string(), "L12+a1+s3@0x101060#2@0x1010a0#1");
  EXPECT_EQ(PositionSpec::parse(chain.to_string()).name(), chain.name());
  EXPECT_EQ(PositionSpec::parse("irq:17").ordinal, 17u);
  const PositionSpec input = PositionSpec::parse("input:serial0:3");
  EXPECT_EQ(input.channel, "serial0");
  EXPECT_EQ(input.ordinal, 3u);
  EXPECT_EQ(PositionSpec::parse("end").kind, PositionSpec::Kind::kEnd);
  for (const char* bad :
       {"", "L", "l12", "L12+", "irq:", "irq:0", "irq:x", "input:serial0", "L12@", "L12@0x10#0",
        "L12@0x10@", "L12@0x10#1@#2", "L12@@0x10", "@0x10", "12", "input::3"})
    EXPECT_THROW(PositionSpec::parse(bad), analyzer::PositionSyntaxError) << bad;
}

// Restoring a checkpoint rewrites guest RAM behind KVM's back. KVM once kept
// its writable translations of the restored page tables, so the CPU did not
// set a PTE's dirty bit again and the replay diverged at the next memory
// digest (hello: a large page first written late in the run). From the end
// of the recording, reached by replay and by single steps (a debugger's
// continue), back to an earlier landmark must be the machine a forward replay
// reaches, and replaying on past recorded digests must not diverge.
TEST(Travel, BackwardFromTheEndMatchesAForwardReplay) {
  SKIP_WITHOUT_KVM();
  const fs::path rec = Recordings::get().of("hello", "--guest hello");
  TimeTraveler forward(rec, {});
  const librr::Position end = forward.end();
  ASSERT_GT(end.landmark, 10u);
  const librr::Position target{end.landmark - 2, 0, 0};
  forward.seek(target);
  const MachineView straight = view_of(forward);

  for (const bool by_steps : {false, true}) {
    SCOPED_TRACE(by_steps ? "end reached by single steps" : "end reached by seek");
    TimeTraveler backward(rec, {});
    if (by_steps) {
      analyzer::Breakpoints unreachable;
      unreachable.code.insert(0);
      EXPECT_EQ(backward.continue_forward(unreachable).kind, analyzer::StopReason::Kind::kEnd);
    } else {
      backward.seek(end);
    }
    EXPECT_EQ(backward.position(), end);
    backward.seek(target);
    EXPECT_EQ(backward.position(), target);
    expect_same(straight, view_of(backward), target.to_string());
    backward.seek(end);  // forward again through the recorded digests
    EXPECT_EQ(backward.position(), end);
  }
}

}  // namespace
