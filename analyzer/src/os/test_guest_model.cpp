#include "os/test_guest_model.h"

#include <fmt/format.h>

#include <array>

#include "os/struct_view.h"

namespace analyzer {
namespace {

constexpr uint32_t kTableMagic = 0x54545252;  // "RRTT"
constexpr uint32_t kTableVersion = 1;

const char* state_name(uint64_t state) {
  static constexpr std::array<const char*, 8> kNames = {
      "unused",       "ready",        "running",     "sleeping",
      "blocked-read", "blocked-wait", "blocked-net", "exited"};
  return state < kNames.size() ? kNames[state] : "?";
}

std::optional<uint64_t> identity_root(const MachineView& view) {
  if (!view.paging_enabled) return std::nullopt;
  return view.cr3 & 0x000f'ffff'ffff'f000ull;
}

}  // namespace

const char* test_guest_syscall_name(unsigned number) {
  static constexpr std::array<const char*, 14> kNames = {
      "EXIT", "WRITE",    "YIELD", "GETPID",  "SLEEP",       "TICKS",    "READ",
      "WAIT", "SHUTDOWN", "KSPIN", "IRQHASH", "CMDLINE_INT", "NET_RECV", "NET_SEND"};
  return number < kNames.size() ? kNames[number] : nullptr;
}

TestGuestModel::TestGuestModel(const Profile& profile, const MachineView& view)
    : profile_(profile),
      // The guest identity-maps its RAM; without paging, virtual == physical.
      memory_(view.memory, identity_root(view), {{0, 0, view.memory.size()}}),
      table_address_(profile.symbol("rr_task_table")) {
  const StructView table(profile_, memory_, "rr_task_table", table_address_);
  uint64_t magic = 0, version = 0;
  try {
    magic = table.unsigned_value("magic");
    version = table.unsigned_value("version");
  } catch (const GuestReadError& e) {
    throw ProfileMismatch("profile " + profile.source() + " does not fit this guest: " + e.what());
  }
  if (magic != kTableMagic || version != kTableVersion)
    throw ProfileMismatch(fmt::format(
        "profile {} does not fit this guest: no task table at {:#x} (magic {:#x}, version {}; "
        "expected {:#x} version {}) - another guest program or build?",
        profile.source(), table_address_, magic, version, kTableMagic, kTableVersion));
}

TestGuestTable TestGuestModel::table() const {
  const StructView table(profile_, memory_, "rr_task_table", table_address_);
  TestGuestTable t;
  t.program = table.char_array("program");
  t.current = static_cast<uint32_t>(table.unsigned_value("current"));
  t.ticks = table.unsigned_value("ticks");
  t.ticks_cpl0 = table.unsigned_value("ticks_cpl0");
  t.ticks_cpl3 = table.unsigned_value("ticks_cpl3");
  t.irq_hash = table.unsigned_value("irq_hash");
  return t;
}

std::vector<Process> TestGuestModel::processes() const {
  const StructView table(profile_, memory_, "rr_task_table", table_address_);
  const uint64_t slots = table.unsigned_value("count");
  const uint64_t task_size = profile_.type_size("rr_task");
  const uint64_t tasks = table.address_of("tasks");
  const uint64_t current = table.unsigned_value("current");
  const FieldInfo counts = profile_.field("rr_task", "syscall_count");
  const uint64_t count_slots = counts.type.value("count", 0);
  std::vector<Process> result;
  for (uint64_t slot = 0; slot < slots && slot < 64; ++slot) {
    const StructView task(profile_, memory_, "rr_task", tasks + slot * task_size);
    const uint64_t state = task.unsigned_value("state");
    if (state == 0) continue;
    Process p;
    p.address = task.address();
    p.pid = p.tgid = static_cast<int64_t>(task.unsigned_value("pid"));
    p.parent_pid = -1;
    p.name = task.char_array("name");
    p.state = slot == current && state != 7 ? "running" : state_name(state);
    p.page_table = task.unsigned_value("cr3");
    p.kernel_thread = slot == 0;
    p.details["ticks_cpl3"] = static_cast<int64_t>(task.unsigned_value("ticks_cpl3"));
    p.details["ticks_cpl0"] = static_cast<int64_t>(task.unsigned_value("ticks_cpl0"));
    p.details["switches_in"] = static_cast<int64_t>(task.unsigned_value("switches_in"));
    p.details["syscalls_total"] = static_cast<int64_t>(task.unsigned_value("syscalls_total"));
    if (state == 7) p.details["exit_code"] = task.signed_value("exit_code");
    for (uint64_t n = 0; n < count_slots; ++n) {
      const uint64_t calls =
          memory_.read_unsigned(task.address() + counts.offset + 4 * n, 4, "rr_task.syscall_count");
      const char* name = test_guest_syscall_name(static_cast<unsigned>(n));
      if (calls != 0)
        p.details[name != nullptr ? std::string("sys_") + name : fmt::format("sys_{}", n)] =
            static_cast<int64_t>(calls);
    }
    result.push_back(std::move(p));
  }
  return result;
}

}  // namespace analyzer
