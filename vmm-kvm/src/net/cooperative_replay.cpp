#include "net/cooperative_replay.h"

#include <fmt/format.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "devices/serial_backends.h"
#include "devices/virtio_net.h"
#include "librr/error.h"
#include "librr/gateway_log_reader.h"
#include "replay/replay_machine.h"

namespace vmm::net {

// One cooperating host replayed, on its own thread, to resolve references to
// its frames. Replays block (resolve) until the frame they need has been
// transmitted by the replay of its sender: a host may receive, at the landmark
// where it sent frame n, a frame its peer sent in answer to frame n, so a
// replay cannot be stopped "just after a send" and resumed later from the
// same call stack; threads let every replay wait at exactly that point.
struct SenderReplay {
  std::thread thread;
  bool done = false;
  std::string error;  // why it ended early, if it did
};

struct CooperativeReplayer::Shared {
  CooperativeReplaySettings settings;
  std::vector<std::unique_ptr<librr::GatewayLogReader>> gateway_logs;
  std::mutex mutex;
  std::condition_variable changed;
  // Every frame transmitted so far by every replayed guest, by (host, sequence).
  std::map<std::string, std::map<uint64_t, std::vector<uint8_t>>, std::less<>> transmitted;
  std::map<std::string, std::unique_ptr<SenderReplay>, std::less<>> senders;
  std::string top_level;  // the host of the replay the user asked for
  bool top_level_done = false;
  // Frames the replays blocked in resolve() wait for (one entry per waiting replay).
  std::vector<const FrameReference*> awaited;
  bool stopping = false;
  CooperativeReplayStats stats;

  ~Shared();
  bool has(const FrameReference& reference) const {
    auto host = transmitted.find(reference.sender);
    return host != transmitted.end() && host->second.count(reference.sequence);
  }
  // All live replays (the top level until it ends, senders until they end)
  // wait, and none of the frames they wait for exists. Call with the mutex held.
  bool all_replays_stuck() const {
    size_t live = top_level_done ? 0 : 1;
    for (const auto& [name, sender] : senders) live += sender && !sender->done;
    if (awaited.size() < live) return false;
    for (const auto* reference : awaited)
      if (has(*reference)) return false;
    return true;
  }
  void run_sender(const std::string& host, std::shared_ptr<Shared> self_reference);
};

namespace {

std::string describe(const FrameReference& reference) {
  return fmt::format("{} frame #{} of {} ({} bytes)",
                     reference.origin == FrameOrigin::kGateway ? "gateway" : "host",
                     reference.sequence, reference.sender, reference.length);
}

std::vector<uint8_t> checked(const FrameReference& reference, std::vector<uint8_t> frame,
                             const std::string& source) {
  if (frame.size() != reference.length ||
      !librr::digests_equal(librr::hash256(frame), reference.digest))
    throw librr::Error(fmt::format("{} from {} does not match the digest the recording logged",
                                   describe(reference), source));
  return frame;
}

}  // namespace

CooperativeReplayer::CooperativeReplayer(const CooperativeReplaySettings& settings)
    : shared_(std::make_shared<Shared>()), self_(settings.self), top_level_(true) {
  shared_->settings = settings;
  shared_->top_level = settings.self;
  for (const auto& directory : settings.gateway_logs)
    shared_->gateway_logs.push_back(std::make_unique<librr::GatewayLogReader>(directory));
}

CooperativeReplayer::CooperativeReplayer(std::shared_ptr<Shared> shared, std::string self)
    : shared_(std::move(shared)), self_(std::move(self)) {}

CooperativeReplayer::~CooperativeReplayer() {
  if (!top_level_) return;
  // The replay the user asked for is over: sender replays still waiting for
  // its frames stop; the others run to their end (nothing interrupts KVM_RUN).
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->top_level_done = true;
    shared_->stopping = true;
    for (auto& [name, sender] : shared_->senders) threads.push_back(std::move(sender->thread));
  }
  shared_->changed.notify_all();
  for (auto& thread : threads)
    if (thread.joinable()) thread.join();
}

CooperativeReplayer::Shared::~Shared() = default;

void CooperativeReplayer::Shared::run_sender(const std::string& host,
                                             std::shared_ptr<Shared> keep_alive) {
  std::string error;
  try {
    BufferSerialOutput console;  // the sender's console goes nowhere visible
    ReplayMachineOptions options;
    options.key = settings.key;
    options.serial_output = &console;
    const auto& recording = settings.recordings.at(host);
    ReplayMachine replay(recording, options);
    auto* net = replay.machine().net();
    if (!net)
      throw librr::Error(
          fmt::format("recording {} of host '{}' has no network device", recording.string(), host));
    net->set_cooperation(
        std::shared_ptr<CooperativeReplayer>(new CooperativeReplayer(std::move(keep_alive), host)));
    ReplayOutcome outcome = replay.session().run();
    if (!outcome.faithful) error = "its replay diverged: " + outcome.message;
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::lock_guard lock(mutex);
  auto& sender = *senders.at(host);
  sender.done = true;
  sender.error = error;
  changed.notify_all();
}

const CooperativeReplayStats& CooperativeReplayer::stats() const { return shared_->stats; }

void CooperativeReplayer::on_transmit(std::span<const uint8_t> frame) {
  ++sequence_;
  std::lock_guard lock(shared_->mutex);
  if (std::getenv("RR_COOP_DEBUG"))
    std::fprintf(stderr, "coop: %s transmits #%llu\n", self_.c_str(),
                 static_cast<unsigned long long>(sequence_));
  if (self_.empty()) return;
  shared_->transmitted[self_][sequence_].assign(frame.begin(), frame.end());
  shared_->changed.notify_all();
}

LoggedFrame CooperativeReplayer::log_received(std::span<const uint8_t> frame) {
  return {"net0", {frame.begin(), frame.end()}};
}

std::vector<uint8_t> CooperativeReplayer::resolve(const FrameReference& reference) {
  Shared& shared = *shared_;
  if (std::getenv("RR_COOP_DEBUG"))
    std::fprintf(stderr, "coop: %s needs %s\n", self_.c_str(), describe(reference).c_str());
  std::unique_lock lock(shared.mutex);  // the readers and the frame store are shared by all replays
  if (reference.origin == FrameOrigin::kGateway) {
    for (auto& log : shared.gateway_logs)
      if (auto frame = log->find(reference.digest)) {
        ++shared.stats.from_gateway;
        return checked(reference, std::move(*frame), "the gateway log");
      }
    throw librr::Error(fmt::format("{}: not in any gateway log given with --resolve-from ({})",
                                   describe(reference), shared.gateway_logs.size()));
  }
  auto lookup = [&]() -> const std::vector<uint8_t>* {
    auto host = shared.transmitted.find(reference.sender);
    if (host == shared.transmitted.end()) return nullptr;
    auto frame = host->second.find(reference.sequence);
    return frame == host->second.end() ? nullptr : &frame->second;
  };
  for (;;) {
    if (const auto* frame = lookup()) {
      ++shared.stats.from_hosts;
      return checked(reference, *frame, "its sender's replay");
    }
    if (shared.stopping) throw librr::Error(describe(reference) + ": replay stopped");
    if (reference.sender == self_)
      throw librr::Error(
          fmt::format("{}: references a frame this host has not sent yet", describe(reference)));
    bool from_top_level = reference.sender == shared.top_level;
    if (from_top_level && shared.top_level_done)
      throw librr::Error(fmt::format("{}: the replay of '{}' ended before sending it",
                                     describe(reference), reference.sender));
    if (!from_top_level) {
      auto& sender = shared.senders[reference.sender];
      if (!sender) {
        if (!shared.settings.recordings.count(reference.sender)) {
          std::string known;
          for (const auto& [name, path] : shared.settings.recordings)
            known += fmt::format("{}{}={}", known.empty() ? "" : ", ", name, path.string());
          shared.senders.erase(reference.sender);
          throw librr::Error(fmt::format(
              "{}: no recording of host '{}' given with --resolve-from {}=RECORDING (known: {})",
              describe(reference), reference.sender, reference.sender,
              known.empty() ? "none" : known));
        }
        sender = std::make_unique<SenderReplay>();
        sender->thread = std::thread(&Shared::run_sender, shared_.get(), reference.sender, shared_);
      } else if (sender->done) {
        throw librr::Error(fmt::format("{}: the replay of '{}' ended before sending it{}",
                                       describe(reference), reference.sender,
                                       sender->error.empty() ? "" : " (" + sender->error + ")"));
      }
    }
    // Every replay waiting for a frame nobody has sent: none can make progress.
    shared.awaited.push_back(&reference);
    if (shared.all_replays_stuck()) {
      shared.awaited.pop_back();
      throw librr::Error(
          fmt::format("{}: every replay waits for a frame another one has not sent (cycle)",
                      describe(reference)));
    }
    shared.changed.wait(lock);
    std::erase(shared.awaited, &reference);
  }
}

}  // namespace vmm::net
