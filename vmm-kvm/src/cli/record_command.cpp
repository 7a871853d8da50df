#include "cli/record_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string_view>

#include "cli/run_command.h"
#include "clock/virtual_clock.h"
#include "librr/deferred_sync.h"
#include "librr/recorder.h"
#include "librr/recording.h"
#include "librr/version.h"
#include "machine/host_cpu_pin.h"
#include "net/cooperative_cli.h"
#include "replay/record_session.h"
#include "replay/searched_position.h"
#include "snapshot/machine_snapshot.h"

namespace vmm::cli {
namespace {

// The initrd as a source of copied pages (RecordPolicy::page_copy_sources),
// when the guest copies it byte for byte: an uncompressed cpio ("newc"
// magic), as Linux unpacks into its page cache. A compressed one is
// decompressed, not copied, and its index (4 bytes per byte) would be waste;
// past kMaxIndexedInitrd only the start is indexed.
std::optional<RecordPolicy::Region> copied_initrd_region(const Machine& machine,
                                                         const boot::BootInfo& boot) {
  constexpr uint64_t kMaxIndexedInitrd = 64ull << 20;
  constexpr std::string_view kCpioNewc = "07070";  // 070701, or 070702 with checksums
  const uint8_t* start = machine.memory().translate(boot.initrd_address, kCpioNewc.size());
  if (boot.initrd_size < kCpioNewc.size() || !start ||
      std::string_view(reinterpret_cast<const char*>(start), kCpioNewc.size()) != kCpioNewc)
    return std::nullopt;
  return RecordPolicy::Region{boot.initrd_address, std::min(boot.initrd_size, kMaxIndexedInitrd)};
}

namespace fs = std::filesystem;

struct RecordOptions {
  RunOptions guest;
  std::string out;
  std::string key_file;
  bool encrypt = false;
  double max_lateness_ms = 4;
  double max_emulated_kernel_lateness_ms = 20;
  double digest_interval_ms = 10'000;
  bool no_kernel_entries = false;
  bool no_kernel_return_stops = false;
  bool search_kernel_stops = false;
  bool no_kernel_stop_search = false;
  bool no_return_site_stops = false;
  bool no_rollback_stops = false;
  bool no_rerun_search = false;
  bool no_return_to_user_deltas = false;
  bool no_return_captures = false;
  net::CooperativeRecordOptions cooperation;
};

int record_command(RecordOptions& options) {
  // Before this thread is pinned to the vCPU's host CPU (deferred_sync.h).
  librr::DeferredSync durable;
  std::optional<librr::Key> key;
  std::unique_ptr<librr::RecordingDir> dir;
  std::unique_ptr<librr::Recorder> recorder;
  VirtualClock clock;
  Timeline timeline;
  PreparedRun prepared;
  try {
    if (!options.key_file.empty()) key = librr::Key::load_file(options.key_file);
    if (options.encrypt && !key) throw librr::Error("--encrypt needs --key FILE");
    dir = std::make_unique<librr::RecordingDir>(librr::RecordingDir::create(options.out));
    librr::LogWriterOptions log_options;
    log_options.key = key;
    log_options.encrypt = options.encrypt;
    log_options.creator = "rr-vmm " + std::string(librr::library_version());
    recorder = std::make_unique<librr::Recorder>(dir->log_path(), log_options);
    prepared = prepare_machine(
        options.guest,
        [&](SerialInput& real) {
          return std::make_unique<RecordingSerialInput>(real, *recorder, timeline);
        },
        [&](MachineConfig& config) {
          config.clock = &clock;
          config.track_dirty_pages = true;
        });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 2;
  }
  Machine& machine = *prepared.machine;

  librr::Manifest& manifest = dir->manifest();
  std::shared_ptr<net::CooperativeRecorder> cooperation;
  try {
    cooperation = net::enable_cooperative_recording(options.cooperation, machine, manifest);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 2;
  }
  manifest.tools.vmm_name = "rr-vmm";
  manifest.tools.vmm_version = std::string(librr::library_version());
  manifest.tools.device_model_version = kDeviceModelVersion;
  manifest.tools.replay_rules_version = ReplayRules::current().manifest_value();
  manifest.guest["name"] = options.guest.guest.empty() && options.guest.kernel.empty()
                               ? "demo"
                               : (options.guest.kernel.empty() ? options.guest.guest : "linux");
  manifest.guest["kernel"] = prepared.kernel_path;
  manifest.guest["kernel_digest"] = prepared.kernel_digest;
  manifest.guest["cmdline"] = prepared.cmdline;
  manifest.guest["memory_bytes"] = std::to_string(machine.memory().size());
  // This thread runs the vCPU: on one host CPU, which replay takes too
  // (machine/host_cpu_pin.h).
  if (const std::optional<int> cpu = pin_to_current_host_cpu())
    manifest.guest[kVcpuHostCpuKey] = std::to_string(*cpu);
  // Replay builds the same devices: virtio-net with no backend (frames come
  // from the log) and virtio-blk on the same base image.
  if (machine.net()) manifest.guest["net"] = options.guest.net;
  if (machine.blk()) {
    manifest.guest["disk_image"] = fs::absolute(options.guest.disk).string();
    manifest.guest["disk_sectors"] = std::to_string(machine.blk()->disk().capacity_sectors());
  }
  manifest.snapshot_digest = librr::to_hex(save_machine_snapshot(
      machine, dir->snapshot_path(), options.encrypt ? key : std::nullopt, nullptr, &durable));
  if (options.encrypt) manifest.snapshot_key_fingerprint = key->fingerprint();
  // The guest starts while the disk takes the snapshot and the manifest
  // (~1.5 ms of fsyncs here); they are durable before record returns.
  dir->write_manifest(&durable);

  RecordPolicy policy;
  policy.max_interrupt_lateness_ns = static_cast<uint64_t>(options.max_lateness_ms * 1e6);
  if (kernel_code_emulated())
    policy.emulated_kernel_lateness_ns =
        static_cast<uint64_t>(options.max_emulated_kernel_lateness_ms * 1e6);
  policy.digest_interval_ns = static_cast<uint64_t>(options.digest_interval_ms * 1e6);
  policy.count_kernel_entries = !options.no_kernel_entries && kernel_entry_counting_useful();
  policy.stop_at_kernel_returns = !options.no_kernel_return_stops;
  policy.stop_at_return_sites = !options.no_return_site_stops;
  policy.roll_back_kernel_stops = !options.no_rollback_stops;
  policy.search_by_rerun = !options.no_rerun_search;
  policy.base_stops_on_return_to_user = !options.no_return_to_user_deltas;
  policy.capture_returns = !options.no_return_captures;
  if (auto initrd = copied_initrd_region(machine, prepared.boot_info))
    policy.page_copy_sources.push_back(*initrd);
  // Searched stops wherever the host makes the search cheap (the probe).
  if (!options.no_kernel_stop_search && policy.count_kernel_entries)
    policy.searched_cpl0_instructions_per_second = kernel_stop_search_rate().value_or(0);
  policy.search_signal_stops = options.search_kernel_stops;
  if (options.search_kernel_stops) {
    if (policy.searched_cpl0_instructions_per_second <= 0)
      std::fprintf(stderr,
                   "rr-vmm: --search-kernel-stops: this host does not make the search cheap "
                   "(rr-vmm probe: hardware breakpoints at CPL0, emulated CPL0, kernel-entry "
                   "counting needed); every stop is installed\n");
  }
  RecordSession session(machine, clock, *recorder, timeline, prepared.wrapped_input.get(), policy);
  StopOnSignals stop_on_signals(machine);

  const auto started = std::chrono::steady_clock::now();
  RunResult result;
  try {
    result = session.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: recording failed: %s\n", e.what());
    return 1;
  }
  try {
    durable.wait();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: the recording in %s may not survive a crash: %s\n",
                 options.out.c_str(), e.what());
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const RecordStats& s = session.stats();
  const librr::RecorderStats& r = recorder->stats();
  uint64_t raw_bytes = 0;
  for (uint64_t b : r.bytes) raw_bytes += b;
  std::fprintf(stderr,
               "rr-vmm: recorded %s in %.2f s: %llu landmarks, %llu async positions, %llu "
               "interrupts, %llu clock samples, %llu idle skips; log %llu bytes raw, %llu on disk; "
               "%.3f s inside %llu KVM_RUN calls\n",
               options.out.c_str(), seconds, static_cast<unsigned long long>(s.landmarks),
               static_cast<unsigned long long>(s.async_positions),
               static_cast<unsigned long long>(s.interrupts),
               static_cast<unsigned long long>(s.clock_samples),
               static_cast<unsigned long long>(s.idle_skips),
               static_cast<unsigned long long>(raw_bytes),
               static_cast<unsigned long long>(std::filesystem::file_size(dir->log_path())),
               static_cast<double>(machine.vcpu().run_ns()) / 1e9,
               static_cast<unsigned long long>(machine.vcpu().run_calls()));
  std::fprintf(
      stderr,
      "rr-vmm: stops: %llu to be searched at replay (%llu at the first hit after a rollback, of "
      "%llu rollbacks; %llu found by a search at record, of %llu tried; %llu moved to a "
      "return site, of %llu watched; %llu cutting an "
      "interrupts-off stretch), %llu at kernel returns (%llu watched from kernel code, %llu "
      "rolled back there from user code, of %llu tried) "
      "(the rest installed), %llu memory "
      "deltas based on the previous position (%llu landmark copies, %llu pages logged "
      "as copies, %llu as fills), %llu on the kernel's return to user mode (of %llu "
      "re-run, %llu memory captures at the return; %llu vCPU states saved for re-runs, %.1f ms "
      "re-running), %llu unlogged stops, %llu "
      "kicks put off in emulated kernel "
      "code, %llu stops at an interrupt window, %s\n",
      static_cast<unsigned long long>(s.searched_positions),
      static_cast<unsigned long long>(s.first_hit_stops),
      static_cast<unsigned long long>(s.rollbacks),
      static_cast<unsigned long long>(s.rerun_searched_stops),
      static_cast<unsigned long long>(s.rerun_searches),
      static_cast<unsigned long long>(s.return_site_stops),
      static_cast<unsigned long long>(s.return_site_watches),
      static_cast<unsigned long long>(s.stretch_cuts),
      static_cast<unsigned long long>(s.kernel_return_stops),
      static_cast<unsigned long long>(s.kernel_return_watches),
      static_cast<unsigned long long>(s.kernel_return_rollbacks),
      static_cast<unsigned long long>(s.kernel_return_rollbacks_tried),
      static_cast<unsigned long long>(s.previous_position_deltas),
      static_cast<unsigned long long>(s.position_memory_syncs),
      static_cast<unsigned long long>(s.copied_pages),
      static_cast<unsigned long long>(s.filled_pages),
      static_cast<unsigned long long>(s.return_to_user_deltas),
      static_cast<unsigned long long>(s.return_to_user_reruns),
      static_cast<unsigned long long>(s.return_bases_captured),
      static_cast<unsigned long long>(s.resume_states_saved), static_cast<double>(s.rerun_ns) / 1e6,
      static_cast<unsigned long long>(s.unlogged_stops),
      static_cast<unsigned long long>(s.deferred_kicks),
      static_cast<unsigned long long>(s.interrupt_window_stops),
      policy.count_kernel_entries
          ? fmt::format("{} kernel entries counted ({} runs unwatched: no stop could end them)",
                        s.kernel_entries, s.unwatched_runs)
                .c_str()
          : "kernel entries not counted");
  if (s.net_frames > 0)
    std::fprintf(stderr, "rr-vmm: %llu received network frames logged (%llu bytes)\n",
                 static_cast<unsigned long long>(s.net_frames),
                 static_cast<unsigned long long>(s.net_frame_bytes));
  if (cooperation)
    std::fprintf(stderr, "rr-vmm: %s\n", net::describe(cooperation->stats()).c_str());
  return exit_status_for(result);
}

}  // namespace

void add_record_command(CLI::App& app) {
  auto options = std::make_shared<RecordOptions>();
  CLI::App* record = app.add_subcommand(
      "record", "boot a guest and record it: initial snapshot plus a log of every input");
  record->add_option("--out,-o", options->out, "recording directory to create (must not exist)")
      ->required();
  CLI::Option* append = add_guest_options(*record, options->guest);
  record->add_option("--key", options->key_file,
                     "key file: MAC every log chunk (tamper evidence); see --encrypt");
  record->add_flag("--encrypt", options->encrypt, "encrypt the log and snapshot with --key");
  // A duration in milliseconds from 0 to `max`.
  const auto add_milliseconds = [record](const char* name, double& value, const char* help,
                                         double fallback, double max) {
    record->add_option(name, value, help)->default_val(fallback)->check(CLI::Range(0.0, max));
  };
  add_milliseconds("--max-irq-lateness-ms", options->max_lateness_ms,
                   "how late a timer interrupt may be before the vCPU is stopped to deliver it", 4,
                   1000);
  add_milliseconds("--max-irq-lateness-emulated-ms", options->max_emulated_kernel_lateness_ms,
                   "the same while the guest runs kernel code, where this host emulates it "
                   "(rr-vmm probe): a tick there is little guest work, and each delivery is "
                   "a logged position",
                   20, 1000);
  add_milliseconds("--digest-interval-ms", options->digest_interval_ms,
                   "guest time between state digests (registers and all of guest memory, "
                   "checked by replay); smaller values find a divergence closer to where it "
                   "starts, at ~60 bytes and one hash of guest RAM each; 0: at every landmark",
                   10'000, 86'400'000);
  record->add_flag("--no-kernel-entries", options->no_kernel_entries,
                   "do not count kernel entries with the debug registers (a guest kernel that "
                   "uses them itself loses them while recording); analyzers then cannot search "
                   "kernel code entered from user mode before a stop in user mode");
  record->add_flag("--no-kernel-return-stops", options->no_kernel_return_stops,
                   "do not deliver due interrupts where the guest kernel returns to user mode "
                   "after a counted entry (a stop replay re-executes to, logged as a register "
                   "hash); stop the vCPU by a signal and log its state instead "
                   "(docs/record-replay.md, \"Kernel-return stops\")");
  record
      ->add_flag("--search-kernel-stops", options->search_kernel_stops,
                 "also search a stop in kernel code where the signal made it (the first in "
                 "each 64-byte line of code), not only at return sites "
                 "(docs/record-replay.md, \"Searched positions\"); says so if this host "
                 "cannot search")
      ->excludes(record->add_flag(
          "--no-kernel-stop-search", options->no_kernel_stop_search,
          "install every stop in kernel code (its vCPU state and memory delta) instead of "
          "logging it as a register hash plus a digest of the pages written since the previous "
          "stop, which replay finds again by a hardware-breakpoint search"));
  record->add_flag("--no-rollback-stops", options->no_rollback_stops,
                   "do not roll the guest back to the previous position to deliver an "
                   "interrupt at the first pass of a kernel loop that waits for it "
                   "(docs/record-replay.md, \"Rollback stops\")");
  record->add_flag("--no-rerun-search", options->no_rerun_search,
                   "install a stop in kernel code that no return site took instead of first "
                   "running the stretch before it again, as replay would, to log it as a "
                   "searched stop when the search finds it (docs/record-replay.md, \"Stops "
                   "searched at record\")");
  record->add_flag("--no-return-to-user-deltas", options->no_return_to_user_deltas,
                   "base an installed stop in user mode on guest memory at the previous position "
                   "instead of right after the kernel's return to user mode, which the recorder "
                   "captures as the guest gets there (docs/record-replay.md, \"Deltas based on "
                   "the return to user mode\")");
  record->add_flag("--no-return-captures", options->no_return_captures,
                   "find guest memory at the kernel's return to user mode by running the stretch "
                   "again to there, as replay will, instead of watching the return and copying "
                   "the pages written so far as the guest gets there");
  record->add_flag("--no-return-site-stops", options->no_return_site_stops,
                   "search a stop in kernel code where the signal made it, instead of moving it "
                   "to the return address of the next call or of the running function "
                   "(docs/record-replay.md, \"Return-site stops\")");
  net::add_cooperative_record_options(*record, options->cooperation);
  record->callback([options, append] {
    options->guest.append_given = append->count() > 0;
    const int status = record_command(*options);
    if (status == 0) throw CLI::Success();
    throw CLI::RuntimeError(status);
  });
}

}  // namespace vmm::cli
