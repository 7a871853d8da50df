#include "machine/machine.h"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <ctime>
#include <utility>

#include "librr/error.h"
#include "machine/guest_cpuid.h"

namespace vmm {
namespace {

SerialOutput& choose_output(const MachineConfig& config, std::unique_ptr<FdSerialOutput>& owned) {
  if (config.serial_output) return *config.serial_output;
  owned = std::make_unique<FdSerialOutput>(1);
  return *owned;
}

Clock& choose_clock(const MachineConfig& config, std::unique_ptr<HostClock>& owned) {
  if (config.clock) return *config.clock;
  owned = std::make_unique<HostClock>();
  return *owned;
}

kvm::GuestRam allocate_ram(uint64_t bytes) {
  if (bytes < (2ull << 20) || bytes > Machine::kMaxRamBytes)
    throw librr::Error(fmt::format("guest memory of {} KiB: must be between 2 MiB and {} MiB",
                                   bytes >> 10, Machine::kMaxRamBytes >> 20));
  return kvm::GuestRam(bytes);
}

int64_t host_unix_seconds() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

Machine::Machine(const MachineConfig& config)
    : system_(config.kvm_device.c_str()),
      vm_(system_.create_vm()),
      ram_(allocate_ram(config.ram_bytes)),
      vcpu_(vm_.create_vcpu(0)),
      clock_(&choose_clock(config, owned_clock_)),
      track_dirty_pages_(config.track_dirty_pages),
      pit_(*clock_, pic_),
      uart_(pic_, choose_output(config, owned_output_), config.serial_input),
      rtc_(*clock_, pic_, config.rtc_base_unix_seconds.value_or(host_unix_seconds())),
      i8042_(*this),
      exit_port_(*this),
      serial_input_(config.serial_input) {
  // Intel VMX needs a TSS region below 4 GiB outside RAM; other backends ignore it.
  try {
    vm_.set_tss_addr(0xfffbd000);
  } catch (const librr::SystemError&) {
    // Not every KVM backend implements it (kvm_pvm); the guest does not depend on it.
  }
  vm_.set_user_memory_region(kRamSlot, 0, ram_.size(), ram_.data(),
                             track_dirty_pages_ ? KVM_MEM_LOG_DIRTY_PAGES : 0);
  // Honest CPUID: the host's, as filtered by KVM (on kvm_pvm seen at CPL0
  // only), without the fields that name the host core it was read on.
  vcpu_.set_cpuid2(cpuid_for_vcpu0(system_.supported_cpuid()));
  if (const int synced = system_.check_extension(KVM_CAP_SYNC_REGS); synced > 0)
    vcpu_.enable_sync_regs(static_cast<uint64_t>(synced));

  pio_bus_.add(Pic8259::kMasterBase, 2, pic_);
  pio_bus_.add(Pic8259::kSlaveBase, 2, pic_);
  pio_bus_.add(Pic8259::kElcrBase, 2, pic_);
  pio_bus_.add(Pit8254::kBasePort, 4, pit_);
  pio_bus_.add(Pit8254::kSystemControlPort, 1, pit_);
  pio_bus_.add(Uart16550::kCom1Base, 8, uart_);
  pio_bus_.add(CmosRtc::kIndexPort, 2, rtc_);
  pio_bus_.add(I8042::kDataPort, 1, i8042_);
  pio_bus_.add(I8042::kCommandPort, 1, i8042_);
  pio_bus_.add(ExitPort::kPort, ExitPort::kSize, exit_port_);
  timed_devices_ = {&pit_, &rtc_};

  if (serial_input_) {
    serial_input_->set_data_ready_callback([this] { kicker_.kick(); });
    uart_.set_wants_input_callback([this] { kicker_.kick(); });
  }
  add_virtio_devices(config);
}

Machine::~Machine() {
  if (serial_input_) serial_input_->set_data_ready_callback(nullptr);
}

void Machine::add_timed_device(TimedDevice& device) { timed_devices_.push_back(&device); }

std::vector<Device*> Machine::devices() const {
  std::vector<Device*> list = {const_cast<Pic8259*>(&pic_), const_cast<Pit8254*>(&pit_),
                               const_cast<Uart16550*>(&uart_), const_cast<CmosRtc*>(&rtc_),
                               const_cast<I8042*>(&i8042_)};
  for (const auto& range : mmio_bus_.ranges()) list.push_back(range.device);
  return list;
}

void Machine::request_exit(int status) {
  if (!pending_result_)
    pending_result_ = RunResult{RunResult::Kind::kExitPort, status,
                                fmt::format("guest wrote {} to the exit port", status)};
}

void Machine::request_reset() {
  if (!pending_result_)
    pending_result_ = RunResult{RunResult::Kind::kReset, 0, "guest reset the machine (i8042)"};
}

void Machine::request_stop() {
  stop_requested_ = true;
  kicker_.kick();
}

std::vector<uint64_t> Machine::take_dirty_log() {
  if (!track_dirty_pages_) throw librr::Error("dirty page tracking is off for this machine");
  std::vector<uint64_t> bitmap = vm_.get_dirty_log(kRamSlot, ram_.size());
  ram_.userspace_writes().take_into(bitmap);  // the device models' writes
  return bitmap;
}

std::vector<uint64_t> Machine::take_device_writes() {
  std::vector<uint64_t> bitmap;
  ram_.userspace_writes().take_into(bitmap);
  return bitmap;
}

std::string Machine::describe_rip() {
  try {
    const kvm_regs regs = vcpu_.get_regs();
    const kvm_sregs sregs = vcpu_.get_sregs();
    return fmt::format("RIP={:#x} CS={:#x} CPL={} CR0={:#x} EFER={:#x}", regs.rip,
                       sregs.cs.selector, sregs.cs.dpl, sregs.cr0, sregs.efer);
  } catch (const librr::Error& e) {
    return std::string("registers unreadable: ") + e.what();
  }
}

uint64_t Machine::earliest_deadline() const {
  uint64_t earliest = TimedDevice::kNoDeadline;
  for (const TimedDevice* device : timed_devices_)
    earliest = std::min(earliest, device->next_deadline_ns());
  return earliest;
}

void Machine::arm_deadline_kick() {
  const uint64_t deadline = earliest_deadline();
  if (deadline == TimedDevice::kNoDeadline) {
    kicker_.kick_at(VcpuKicker::kNever);
    return;
  }
  // Guest-clock deadline to host time: exact (and constant, so the timer is
  // not re-armed at every exit) for our HostClock; for other clocks
  // (record/replay) approximate from the current reading.
  if (owned_clock_) {
    kicker_.kick_at(owned_clock_->host_time_of(deadline));
    return;
  }
  const uint64_t now_guest = clock_->now_ns();
  const uint64_t delay = deadline > now_guest ? deadline - now_guest : 0;
  kicker_.kick_at(host_monotonic_ns() + delay);
}

void Machine::advance_timed_devices() {
  const uint64_t now = clock_->now_ns();
  for (TimedDevice* device : timed_devices_)
    if (device->next_deadline_ns() <= now) device->advance_to(now);
}

void Machine::service_devices() {
  advance_timed_devices();
  uart_.pull_input();
  pump_net();
}

// ---- the three interface points ----

void Machine::dispatch_synchronous_exit() {
  kvm_run& run = *vcpu_.run_state();
  ++stats_.landmarks;
  switch (run.exit_reason) {
    case KVM_EXIT_IO:
      ++stats_.pio_exits;
      handle_pio(run);
      break;
    case KVM_EXIT_MMIO:
      ++stats_.mmio_exits;
      handle_mmio(run);
      break;
    default:  // KVM_EXIT_HLT: the caller decides how to wait
      ++stats_.halts;
      break;
  }
}

void Machine::on_synchronous_exit() {
  dispatch_synchronous_exit();
  kvm_run& run = *vcpu_.run_state();
  if (run.exit_reason == KVM_EXIT_HLT)
    handle_halt(run);
  else
    pump_net();  // frames held back until the guest posted buffers (an MMIO exit)
  if (observer_) observer_->on_synchronous_exit(stats_.landmarks, run);
}

void Machine::on_asynchronous_stop() {
  ++stats_.asynchronous_stops;
  kicker_.acknowledge(vcpu_.run_state());
  service_devices();
  if (observer_) observer_->on_asynchronous_stop(stats_.landmarks);
}

bool Machine::interrupt_deliverable() const {
  const kvm_run& run = *vcpu_.run_state();
  return pic_.has_pending_interrupt() && run.ready_for_interrupt_injection && run.if_flag;
}

uint8_t Machine::inject_interrupt() {
  const uint8_t vector = pic_.acknowledge();
  vcpu_.interrupt(vector);
  ++stats_.interrupts_delivered;
  return vector;
}

void Machine::deliver_interrupt() {
  kvm_run& run = *vcpu_.run_state();
  if (!pic_.has_pending_interrupt()) {
    run.request_interrupt_window = 0;
    return;
  }
  if (interrupt_deliverable()) {
    const uint8_t vector = inject_interrupt();
    run.request_interrupt_window = 0;
    if (observer_) observer_->on_interrupt_delivered(stats_.landmarks, vector);
  } else {
    // IF=0 or an interrupt shadow: KVM exits as soon as the guest can take it.
    run.request_interrupt_window = 1;
  }
}

void Machine::forget_guest_mappings() {
  vm_.set_user_memory_region(kRamSlot, 0, 0, ram_.data(), 0);  // size 0 deletes the slot
  vm_.set_user_memory_region(kRamSlot, 0, ram_.size(), ram_.data(),
                             track_dirty_pages_ ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

void Machine::settle_vcpu() {
  kvm_run& run = *vcpu_.run_state();
  const uint8_t saved = run.immediate_exit;
  run.immediate_exit = 1;
  const int result = vcpu_.run();
  run.immediate_exit = saved;
  if (result != -EINTR && result != 0) {
    errno = -result;
    librr::throw_errno("KVM_RUN (settling the vCPU) at " + describe_rip());
  }
}

// ---- exit handlers ----

void Machine::handle_pio(kvm_run& run) {
  auto* base = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
  const size_t size = run.io.size;
  // String instructions (rep ins/outs) arrive as `count` back-to-back items.
  for (uint32_t i = 0; i < run.io.count; ++i) {
    std::span<uint8_t> item(base + i * size, size);
    const bool claimed = run.io.direction == KVM_EXIT_IO_OUT ? pio_bus_.write(run.io.port, item)
                                                             : pio_bus_.read(run.io.port, item);
    if (!claimed) ++stats_.unclaimed_pio;
  }
}

void Machine::handle_mmio(kvm_run& run) {
  std::span<uint8_t> data(run.mmio.data, std::min<size_t>(run.mmio.len, sizeof run.mmio.data));
  const bool claimed = run.mmio.is_write ? mmio_bus_.write(run.mmio.phys_addr, data)
                                         : mmio_bus_.read(run.mmio.phys_addr, data);
  if (!claimed) ++stats_.unclaimed_mmio;
}

void Machine::handle_halt(kvm_run& run) {
  // Without an in-kernel irqchip KVM hands HLT to us and, if re-entered,
  // continues after the HLT. So re-enter only once an interrupt is pending.
  while (!pending_result_ && !stop_requested_) {
    service_devices();
    if (pic_.has_pending_interrupt()) return;
    if (!run.if_flag) {
      pending_result_ = RunResult{RunResult::Kind::kHaltedForever, 0,
                                  "guest halted with interrupts disabled at " + describe_rip()};
      return;
    }
    const uint64_t deadline = earliest_deadline();
    if (deadline == TimedDevice::kNoDeadline && !serial_input_ && !net_can_receive()) {
      pending_result_ =
          RunResult{RunResult::Kind::kHaltedForever, 0,
                    "guest halted with no timer armed and no input at " + describe_rip()};
      return;
    }
    uint64_t host_deadline = VcpuKicker::kNever;
    if (deadline != TimedDevice::kNoDeadline) {
      const uint64_t now = clock_->now_ns();
      host_deadline = host_monotonic_ns() + (deadline > now ? deadline - now : 0);
    }
    kicker_.wait_for_kick(host_deadline);
    kicker_.acknowledge(&run);
  }
}

// ---- the loop ----

Machine::Exit Machine::enter_guest() {
  kvm_run& run = *vcpu_.run_state();
  const int result = vcpu_.run();
  if (result == -EINTR || (result == 0 && run.exit_reason == KVM_EXIT_INTR))
    return {Exit::Kind::kAsynchronous, {}};
  if (result == -EAGAIN) return {Exit::Kind::kSpurious, {}};
  if (result < 0) {
    errno = -result;
    librr::throw_errno("KVM_RUN at " + describe_rip());
  }
  switch (run.exit_reason) {
    case KVM_EXIT_IO:
    case KVM_EXIT_MMIO:
    case KVM_EXIT_HLT:
      return {Exit::Kind::kSynchronous, {}};
    case KVM_EXIT_IRQ_WINDOW_OPEN:
      ++stats_.interrupt_window_exits;
      return {Exit::Kind::kSpurious, {}};
    case KVM_EXIT_SHUTDOWN:
      return {Exit::Kind::kTerminal,
              {RunResult::Kind::kShutdown, 0,
               "guest triple-faulted (KVM_EXIT_SHUTDOWN) at " + describe_rip()}};
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string data;
      for (uint32_t i = 0; i < run.internal.ndata && i < 16; ++i)
        data += fmt::format(" {:#x}", run.internal.data[i]);
      return {
          Exit::Kind::kTerminal,
          {RunResult::Kind::kError, 0,
           fmt::format("KVM internal error, suberror {} ({}) at {}; data:{}", run.internal.suberror,
                       run.internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                           ? "instruction emulation failed"
                           : "see linux/kvm.h",
                       describe_rip(), data)}};
    }
    case KVM_EXIT_FAIL_ENTRY:
      return {Exit::Kind::kTerminal,
              {RunResult::Kind::kError, 0,
               fmt::format("KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {:#x} at {}",
                           run.fail_entry.hardware_entry_failure_reason, describe_rip())}};
    default:
      return {
          Exit::Kind::kTerminal,
          {RunResult::Kind::kError, 0,
           fmt::format("unexpected KVM exit reason {} at {}", run.exit_reason, describe_rip())}};
  }
}

RunResult Machine::run() {
  kicker_.bind_to_current_thread(vcpu_.run_state());
  struct Unbind {
    VcpuKicker& kicker;
    ~Unbind() { kicker.unbind(); }
  } unbind{kicker_};

  for (;;) {
    if (pending_result_) return *std::exchange(pending_result_, std::nullopt);
    if (stop_requested_.exchange(false))
      return RunResult{RunResult::Kind::kStopped, 0, "stopped at " + describe_rip()};

    deliver_interrupt();
    arm_deadline_kick();
    const Exit exit = enter_guest();
    switch (exit.kind) {
      case Exit::Kind::kAsynchronous:
        on_asynchronous_stop();
        break;
      case Exit::Kind::kSynchronous:
        on_synchronous_exit();
        break;
      case Exit::Kind::kSpurious:
        break;
      case Exit::Kind::kTerminal:
        return exit.result;
    }
  }
}

uint64_t parse_memory_size(const std::string& text) {
  if (text.empty()) throw librr::Error("empty memory size");
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 12) throw librr::Error("bad memory size '" + text + "'");
  uint64_t value = std::stoull(text.substr(0, digits));
  const std::string suffix = text.substr(digits);
  if (suffix == "K" || suffix == "k" || suffix == "KiB")
    value <<= 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB")
    value <<= 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB")
    value <<= 30;
  else if (!suffix.empty())
    throw librr::Error("bad memory size '" + text + "' (use a number with K, M or G)");
  return value;
}

}  // namespace vmm
