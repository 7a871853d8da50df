#pragma once
// A uniprocessor PC-like machine on KVM with every device in userspace: no
// in-kernel irqchip, no in-kernel PIT. Guest RAM is one slot at 0; devices
// sit on an I/O-port bus and an MMIO bus; the 8259 PIC computes the vector
// that the run loop injects with KVM_INTERRUPT.
//
// The run loop has exactly three points where the outside world meets the
// guest, each a single function (record/replay hooks them through
// ExecutionObserver):
//   on_synchronous_exit()   PIO, MMIO or HLT: a deterministic "landmark"
//   on_asynchronous_stop()  the vCPU was kicked (timer due, input arrived)
//   deliver_interrupt()     the PIC's vector is injected before re-entry
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "clock/host_clock.h"
#include "devices/cmos_rtc.h"
#include "devices/exit_port.h"
#include "devices/i8042.h"
#include "devices/pic8259.h"
#include "devices/pit8254.h"
#include "devices/power_control.h"
#include "devices/serial_backends.h"
#include "devices/uart16550.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "kvm/kvm.h"
#include "machine/bus.h"
#include "machine/fd_ready_watcher.h"
#include "machine/vcpu_kicker.h"
#include "machine/vcpu_state.h"

namespace vmm {

struct MachineConfig {
  uint64_t ram_bytes = 128ull << 20;
  // Serial console. Null output means stdout; null input means no input.
  SerialOutput* serial_output = nullptr;
  SerialInput* serial_input = nullptr;
  // Guest clock; null means a HostClock owned by the machine.
  Clock* clock = nullptr;
  // Wall time the RTC starts at; nullopt means the host's time now.
  std::optional<int64_t> rtc_base_unix_seconds;
  // Enables KVM_MEM_LOG_DIRTY_PAGES on guest RAM (for snapshots).
  bool track_dirty_pages = false;
  std::string kvm_device = "/dev/kvm";
  // virtio-net at 0xd0000000 IRQ 5: a backend spec for net::make_net_backend
  // ("unix:PATH", "tap:NAME", "fd:N", "none"); empty means no virtio-net.
  std::string net_backend;
  // virtio-blk at 0xd0001000 IRQ 6: a raw image, opened read-only; empty
  // means no virtio-blk. Writes go to `disk_overlay` (empty: in memory).
  std::string disk_image;
  std::string disk_overlay;
};

// Why run() returned.
struct RunResult {
  enum class Kind {
    kExitPort,       // the guest wrote its exit status to port 0xf4
    kReset,          // i8042 reset
    kShutdown,       // triple fault (KVM_EXIT_SHUTDOWN)
    kStopped,        // request_stop() from another thread
    kHaltedForever,  // HLT with nothing that could ever wake the guest
    kError,          // KVM internal error, failed entry, unexpected exit
  };
  Kind kind = Kind::kError;
  int exit_status = 0;  // for kExitPort
  std::string message;  // human-readable detail, includes RIP where relevant
};

// Optional callbacks at the run loop's three interface points.
class ExecutionObserver {
 public:
  virtual ~ExecutionObserver() = default;
  // After a PIO/MMIO/HLT exit was handled; `landmark` counts them from 1.
  virtual void on_synchronous_exit(uint64_t /*landmark*/, const kvm_run& /*exit*/) {}
  // After a kick stopped the vCPU and due timers/input were serviced.
  virtual void on_asynchronous_stop(uint64_t /*landmarks_so_far*/) {}
  // Just after KVM_INTERRUPT(vector) was issued.
  virtual void on_interrupt_delivered(uint64_t /*landmarks_so_far*/, uint8_t /*vector*/) {}
};

struct MachineStats {
  uint64_t landmarks = 0;  // synchronous exits: PIO + MMIO + HLT
  uint64_t pio_exits = 0;
  uint64_t mmio_exits = 0;
  uint64_t halts = 0;
  uint64_t asynchronous_stops = 0;
  uint64_t interrupts_delivered = 0;
  uint64_t interrupt_window_exits = 0;
  uint64_t unclaimed_pio = 0;
  uint64_t unclaimed_mmio = 0;
};

class Machine final : private PowerControl {
 public:
  static constexpr uint64_t kMaxRamBytes = 3ull << 30;  // below the MMIO hole
  static constexpr uint64_t kMmioHoleStart = 0xc0000000;
  static constexpr uint32_t kRamSlot = 0;
  // virtio-mmio placement (guest ABI, docs/virtio.md "Placement").
  static constexpr uint64_t kVirtioNetBase = 0xd0000000;
  static constexpr unsigned kVirtioNetIrq = 5;
  static constexpr uint64_t kVirtioBlkBase = 0xd0001000;
  static constexpr unsigned kVirtioBlkIrq = 6;
  // The guest's MAC address (the test guests' peer expects it).
  static constexpr virtio::VirtioNet::Mac kGuestMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

  explicit Machine(const MachineConfig& config);
  ~Machine() override;
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  GuestMemory memory() const { return ram_.memory(); }
  kvm::System& kvm_system() { return system_; }
  kvm::Vm& vm() { return vm_; }
  kvm::Vcpu& vcpu() { return vcpu_; }
  PioBus& pio_bus() { return pio_bus_; }
  MmioBus& mmio_bus() { return mmio_bus_; }
  Clock& clock() { return *clock_; }
  IrqSink& irqs() { return pic_; }
  Pic8259& pic() { return pic_; }
  Pit8254& pit() { return pit_; }
  Uart16550& uart() { return uart_; }
  CmosRtc& rtc() { return rtc_; }
  const MachineStats& stats() const { return stats_; }
  // The virtio devices, null when not configured.
  virtio::VirtioNet* net() { return net_.get(); }
  virtio::VirtioBlk* blk() { return blk_.get(); }
  // The `virtio_mmio.device=...` entries announcing the configured devices,
  // each preceded by a space: append to the guest's command line.
  std::string virtio_cmdline() const;

  // Registers a device whose deadlines the run loop must honour (PIT and RTC
  // are registered already).
  void add_timed_device(TimedDevice& device);
  // Every device with state, in a stable order, for snapshots.
  std::vector<Device*> devices() const;
  void set_observer(ExecutionObserver* observer) { observer_ = observer; }

  // Runs the vCPU on the calling thread until the guest ends or request_stop().
  RunResult run();
  // Thread-safe: makes run() return kStopped at its next stop.
  void request_stop();
  // Thread-safe: asks for an asynchronous stop (new input, new deadline).
  void kick() { kicker_.kick(); }

  // ---- Primitives for sessions that drive the vCPU themselves ----
  // run() is the live loop built from these; record/replay sessions
  // (replay/record_session.h, replay/replay_session.h) build their own loops
  // from the same pieces, so exits are handled identically in all three.
  struct Exit {
    enum class Kind {
      kSynchronous,   // PIO, MMIO or HLT: a landmark, not yet dispatched
      kAsynchronous,  // a kick (signal + immediate_exit) stopped the vCPU
      kSpurious,      // interrupt window, -EAGAIN: nothing happened
      kTerminal,      // the machine ended; see `result`
    };
    Kind kind = Kind::kSpurious;
    RunResult result;  // kTerminal only
  };
  // One KVM_RUN, classified. Throws SystemError if KVM_RUN itself fails.
  Exit enter_guest();
  // Handles the PIO/MMIO/HLT exit that enter_guest() reported (device
  // models run here; HLT needs nothing) and counts the landmark.
  void dispatch_synchronous_exit();
  // An interrupt is pending at the PIC and the guest can take it now (IF=1,
  // no interrupt shadow), per the last exit's kvm_run.
  bool interrupt_deliverable() const;
  // Acknowledges the PIC's highest-priority interrupt and injects it.
  uint8_t inject_interrupt();
  // Advances every timed device whose deadline passed (Clock::now_ns()).
  void advance_timed_devices();
  uint64_t next_deadline() const { return earliest_deadline(); }
  // A result set by a device during the last exit (exit port, reset).
  std::optional<RunResult> take_pending_result() {
    return std::exchange(pending_result_, std::nullopt);
  }
  // KVM_RUN with immediate_exit set: completes a pending PIO/MMIO read into
  // the registers and refreshes kvm_run's if_flag/ready flags without
  // executing a guest instruction. Needed before reading or replacing vCPU state.
  void settle_vcpu();
  VcpuKicker& kicker() { return kicker_; }
  // Consumes a request_stop() (for session loops).
  bool take_stop_request() { return stop_requested_.exchange(false); }
  kvm_run& run_state() { return *vcpu_.run_state(); }
  std::string describe_rip();

  // Guest RAM was rewritten from userspace (a checkpoint restored): KVM's
  // shadow page tables still hold translations of the old guest page tables,
  // and a writable one means the CPU will not set the guest PTE's dirty bit
  // again on the next write. Re-registering the RAM slot drops them all (and
  // the slot's dirty log).
  void forget_guest_mappings();
  VcpuState save_vcpu_state() const { return VcpuState::capture(vcpu_); }
  void restore_vcpu_state(const VcpuState& state) { state.restore(vcpu_); }
  // Pages written since the previous call (needs track_dirty_pages): by the
  // vCPU (KVM's dirty log) or by the device models (GuestMemory::write).
  std::vector<uint64_t> take_dirty_log();
  bool tracks_dirty_pages() const { return track_dirty_pages_; }
  // The device models' part of that alone (no ioctl): pages written by
  // GuestMemory::write since the previous take of either.
  std::vector<uint64_t> take_device_writes();

  // ---- Received network frames ----
  // The backend's fd was readable and the device can take frames now.
  bool net_input_ready() const;
  // If net_input_ready(), takes frames from the backend into virtio-net,
  // showing each to `observe` first (record logs it there); returns how many.
  // Frames stay in the backend while the guest has no room (backpressure).
  // Call only at the session's pump points (docs/record-replay.md).
  using FrameObserver = std::function<void(std::span<const uint8_t>)>;
  size_t pump_net(const FrameObserver& observe = {});
  // The backend can still produce frames (a halted guest may be woken by one).
  bool net_can_receive() const { return net_watcher_ != nullptr && !net_peer_gone_; }

 private:
  void request_exit(int status) override;
  void request_reset() override;

  // The three interface points (see the file comment).
  void on_synchronous_exit();
  void on_asynchronous_stop();
  void deliver_interrupt();

  void handle_pio(kvm_run& run);
  void handle_mmio(kvm_run& run);
  // HLT: waits (in guest time) until an interrupt can be delivered.
  void handle_halt(kvm_run& run);
  // Advances every timed device to now and pulls serial input.
  void service_devices();
  // Builds virtio-net / virtio-blk as configured and maps them on the MMIO bus.
  void add_virtio_devices(const MachineConfig& config);
  // The backend will never deliver again: stop watching it (logs `why`).
  void stop_net_input(const std::string& why);
  uint64_t earliest_deadline() const;
  void arm_deadline_kick();

  kvm::System system_;
  kvm::Vm vm_;
  kvm::GuestRam ram_;
  kvm::Vcpu vcpu_;
  std::unique_ptr<HostClock> owned_clock_;
  Clock* clock_;
  std::unique_ptr<FdSerialOutput> owned_output_;
  bool track_dirty_pages_;

  Pic8259 pic_;
  Pit8254 pit_;
  Uart16550 uart_;
  CmosRtc rtc_;
  I8042 i8042_;
  ExitPort exit_port_;
  SerialInput* serial_input_;

  PioBus pio_bus_;
  MmioBus mmio_bus_;
  std::vector<TimedDevice*> timed_devices_;
  VcpuKicker kicker_;
  ExecutionObserver* observer_ = nullptr;
  MachineStats stats_;

  std::optional<RunResult> pending_result_;  // set by a device during an exit
  std::atomic<bool> stop_requested_{false};

  // After the kicker: the watcher kicks it and is destroyed first.
  std::unique_ptr<virtio::VirtioNet> net_;
  std::unique_ptr<virtio::VirtioBlk> blk_;
  std::unique_ptr<FdReadyWatcher> net_watcher_;
  bool net_peer_gone_ = false;
};

// Parses sizes like "512M", "1G", "65536K", "134217728".
uint64_t parse_memory_size(const std::string& text);

}  // namespace vmm
