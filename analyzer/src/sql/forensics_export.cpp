#include "sql/forensics_export.h"

#include <fmt/format.h>

#include <cstdio>

#include "memory/physical_memory.h"
#include "os/machine_view.h"
#include "profile/profile_store.h"
#include "replay/replay_machine.h"
#include "sql/timeline_tables.h"

namespace analyzer::sql {
namespace {

constexpr uint64_t kCr0Paging = 1ull << 31;

// Reads the sampler's view of a replaying machine: its RAM as mapped into
// this process and the paging registers. Nothing is written to the vCPU.
template <class Body>
void with_machine_view(vmm::ReplayMachine& replay, const Body& body) {
  vmm::Machine& machine = replay.machine();
  const vmm::GuestMemory ram = machine.memory();
  const BufferPhysicalMemory memory(std::span<const uint8_t>(ram.host_base(), ram.size()));
  const kvm_sregs sregs = machine.vcpu().get_sregs();
  body(MachineView{memory, sregs.cr3, (sregs.cr0 & kCr0Paging) != 0}, replay.timeline().position());
}

void warn(const std::string& message) {
  std::fprintf(stderr, "rr-analyze: warning: %s\n", message.c_str());
}

std::string join_problems(const std::vector<std::string>& problems) {
  std::string out;
  for (const std::string& problem : problems) out += (out.empty() ? "" : "; ") + problem;
  return out;
}

}  // namespace

ExportForensics::ExportForensics(const librr::RecordingDir& recording,
                                 const ForensicsOptions& options, uint64_t end_landmark)
    : recording_(recording.root()), options_(options) {
  if (!options_.enabled) {
    outcome_.message = "export --no-forensics or --no-replay";
    return;
  }
  try {
    profile_ =
        std::make_unique<Profile>(profile_for_recording(recording.manifest(), options_.profile));
  } catch (const librr::Error& e) {
    // A profile the user named must work (exit 2, like ps); without one,
    // a recording of an unknown kernel still exports its other tables.
    if (!options_.profile.empty())
      throw librr::Error(fmt::format("--profile {}: {}", options_.profile, e.what()));
    outcome_.status = "no_profile";
    outcome_.message = e.what();
    warn(fmt::format("no forensic tables: {}", e.what()));
    return;
  }
  outcome_.profile = profile_->source();
  sampler_ = std::make_unique<ForensicSampler>(*profile_, end_landmark);
  outcome_.sample_interval = sampler_->interval();
}

ExportForensics::~ExportForensics() = default;

void ExportForensics::after_step(vmm::ReplayMachine& machine) {
  if (!sampler_->due(machine.timeline().landmark())) return;
  with_machine_view(machine, [&](const MachineView& view, const librr::Position& pos) {
    sampler_->sample(view, pos);
  });
}

void ExportForensics::at_end(vmm::ReplayMachine& machine) {
  reached_end_ = true;
  with_machine_view(machine, [&](const MachineView& view, const librr::Position& pos) {
    sampler_->finish(view, pos);
  });
}

ForensicsOutcome ExportForensics::finish(Database& db, const std::string& replay_status,
                                         const std::optional<librr::Key>& key) {
  if (!sampler_) return outcome_;
  if (!reached_end_) {
    outcome_.status = "unavailable";
    outcome_.message = "the recording could not be replayed here (see replay_message)";
    return outcome_;
  }
  std::vector<std::string> problems = sampler_->problems();
  bool partial = sampler_->incomplete();
  if (replay_status == "diverged") {
    partial = true;
    problems.insert(problems.begin(),
                    "replay diverged: the tables describe the machine up to the divergence");
  }
  outcome_.status = "complete";
  if (!options_.timeline) {
    outcome_.status = "no_timeline";
    problems.push_back("--no-timeline: process_events, syscalls, file_events, net_events not made");
  } else if (replay_status != "diverged") {
    try {
      const TimelineTablesResult timeline =
          export_timeline_tables(db, recording_, key, *profile_, options_.timeline_kinds);
      sampler_->apply_creations(timeline.creations);
      outcome_.events =
          timeline.process_events + timeline.syscalls + timeline.file_events + timeline.net_events;
    } catch (const librr::Error& e) {
      partial = true;
      problems.push_back(fmt::format("timeline: {}", e.what()));
      warn(fmt::format("no process_events, syscalls, file_events, net_events: {}", e.what()));
    }
  }
  if (partial) outcome_.status = "partial";
  sampler_->write(db);
  outcome_.os = sampler_->os_name().empty() ? std::nullopt : std::optional(sampler_->os_name());
  outcome_.samples = sampler_->samples();
  outcome_.processes = sampler_->process_count();
  outcome_.kernel_log = sampler_->log_count();
  if (!problems.empty()) outcome_.message = join_problems(problems);
  return outcome_;
}

}  // namespace analyzer::sql
