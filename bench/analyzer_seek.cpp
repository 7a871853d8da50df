// Seek latency of the analyzer's TimeTraveler to random landmarks of a
// recording, without checkpoints (every backward seek replays from the start)
// and with them, next to the peer: replaying the recording from its start to
// the same point (what `rr-vmm replay` would have to do).
//
//   bench_analyzer_seek REC [SEEKS] [SEED]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "replay/replay_machine.h"
#include "travel/time_traveler.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Stats {
  double mean = 0, median = 0, max = 0;
};

Stats stats_of(std::vector<double> samples) {
  Stats s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  for (double v : samples) s.mean += v / static_cast<double>(samples.size());
  s.median = samples[samples.size() / 2];
  s.max = samples.back();
  return s;
}

vmm::ReplayMachineOptions quiet_console(vmm::SerialOutput& console) {
  vmm::ReplayMachineOptions options;
  options.serial_output = &console;
  return options;
}

// The peer: a fresh replay from the initial snapshot up to `landmark`.
double replay_from_start_to(const std::string& recording, uint64_t landmark) {
  vmm::BufferSerialOutput console;
  const auto start = Clock::now();
  vmm::ReplayMachine replay(recording, quiet_console(console));
  while (replay.timeline().position().landmark < landmark && replay.session().advance()) {
  }
  return seconds_since(start);
}

std::vector<double> time_seeks(analyzer::TimeTraveler& traveler,
                               const std::vector<uint64_t>& targets) {
  std::vector<double> latencies;
  for (uint64_t landmark : targets) {
    const auto start = Clock::now();
    traveler.seek({landmark, 0, 0});
    latencies.push_back(seconds_since(start));
  }
  return latencies;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: {} RECORDING [SEEKS] [SEED]\n", argv[0]);
    return 2;
  }
  const std::string recording = argv[1];
  const int seeks = argc > 2 ? std::stoi(argv[2]) : 20;
  std::mt19937_64 random(argc > 3 ? std::stoull(argv[3]) : 1);

  // Full replay, once: the length of the recording in replay time.
  vmm::BufferSerialOutput console;
  auto start = Clock::now();
  vmm::ReplayMachine full(recording, quiet_console(console));
  const vmm::ReplayOutcome outcome = full.session().run();
  const double full_seconds = seconds_since(start);
  if (!outcome.faithful) {
    fmt::print(stderr, "replay diverged: {}\n", outcome.message);
    return 1;
  }
  const uint64_t landmarks = outcome.end.landmark;
  std::vector<uint64_t> targets;
  std::uniform_int_distribution<uint64_t> pick(1, landmarks);
  for (int i = 0; i < seeks; ++i) targets.push_back(pick(random));

  // The peer for each target, measured on a sample (it is the slow part).
  std::vector<double> peer;
  for (int i = 0; i < std::min(seeks, 5); ++i)
    peer.push_back(replay_from_start_to(recording, targets[i]));

  analyzer::TravelOptions without;
  without.checkpoint_memory_budget = 0;
  start = Clock::now();
  analyzer::TimeTraveler plain(recording, without);
  const double open_seconds = seconds_since(start);
  // Like the peer, on a sample: without checkpoints each backward seek
  // replays from the start, which on a long recording takes minutes.
  const std::vector<uint64_t> sample(targets.begin(),
                                     targets.begin() + std::min<std::ptrdiff_t>(seeks, 5));
  const Stats no_checkpoints = stats_of(time_seeks(plain, sample));

  analyzer::TravelOptions with;
  analyzer::TimeTraveler traveler(recording, with);
  start = Clock::now();
  traveler.seek(traveler.end());  // the first pass takes the checkpoints
  const double first_pass = seconds_since(start);
  const Stats checkpoints = stats_of(time_seeks(traveler, targets));
  const Stats peer_stats = stats_of(peer);

  fmt::print("recording {}: {} landmarks, full replay {:.3f} s, open {:.3f} s\n", recording,
             landmarks, full_seconds, open_seconds);
  fmt::print("checkpoints: {} kept, {:.1f} MiB of pages, first pass to the end {:.3f} s\n",
             traveler.checkpoint_count(),
             static_cast<double>(traveler.checkpoint_bytes()) / (1 << 20), first_pass);
  fmt::print("{:<36}{:>10}{:>10}{:>10}{:>12}\n", "seek to a random landmark", "mean s", "median s",
             "max s", "vs peer");
  const auto row = [&](const char* name, const Stats& s) {
    fmt::print("{:<36}{:>10.4f}{:>10.4f}{:>10.4f}{:>11.2f}x\n", name, s.mean, s.median, s.max,
               peer_stats.mean > 0 ? s.mean / peer_stats.mean : 0);
  };
  row("peer: replay from the start (5)", peer_stats);
  row("traveler, start checkpoint only (5)", no_checkpoints);
  row(fmt::format("traveler, with checkpoints ({})", seeks).c_str(), checkpoints);
  return 0;
}
