#include "devices/cmos_rtc.h"

#include <ctime>

#include "librr/error.h"

namespace vmm {
namespace {
constexpr uint64_t kNsPerSecond = 1'000'000'000;
// Update-in-progress is visible for this long before each second boundary.
constexpr uint64_t kUpdateInProgressNs = 244'000;

enum Register : uint8_t {
  kSeconds = 0x00,
  kAlarmSeconds = 0x01,
  kMinutes = 0x02,
  kAlarmMinutes = 0x03,
  kHours = 0x04,
  kAlarmHours = 0x05,
  kWeekday = 0x06,
  kDayOfMonth = 0x07,
  kMonth = 0x08,
  kYear = 0x09,
  kStatusA = 0x0a,
  kStatusB = 0x0b,
  kStatusC = 0x0c,
  kStatusD = 0x0d,
  kCentury = 0x32,
};

constexpr uint8_t kBSet = 0x80;
constexpr uint8_t kBPeriodicEnable = 0x40;
constexpr uint8_t kBAlarmEnable = 0x20;
constexpr uint8_t kBUpdateEndedEnable = 0x10;
constexpr uint8_t kBBinary = 0x04;
constexpr uint8_t kB24Hour = 0x02;

constexpr uint8_t kCIrqFlag = 0x80;
constexpr uint8_t kCPeriodic = 0x40;
constexpr uint8_t kCAlarm = 0x20;
constexpr uint8_t kCUpdateEnded = 0x10;

bool is_time_register(uint8_t index) { return index <= kYear || index == kCentury; }
}  // namespace

CmosRtc::CmosRtc(Clock& clock, IrqSink& irqs, int64_t base_unix_seconds)
    : clock_(clock), irqs_(irqs), base_unix_seconds_(base_unix_seconds) {
  ram_[kStatusA] = 0x26;  // 32.768 kHz divider, 1024 Hz periodic rate
  ram_[kStatusB] = kB24Hour;
  ram_[kStatusD] = 0x80;  // valid RAM and time (battery good)
}

int64_t CmosRtc::guest_unix_seconds() {
  return base_unix_seconds_ + guest_offset_seconds_ +
         static_cast<int64_t>(clock_.now_ns() / kNsPerSecond);
}

uint8_t CmosRtc::encode(unsigned value) const {
  if (ram_[kStatusB] & kBBinary) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>(((value / 10) << 4) | (value % 10));
}

unsigned CmosRtc::decode(uint8_t value) const {
  if (ram_[kStatusB] & kBBinary) return value;
  return (value >> 4) * 10 + (value & 0x0f);
}

uint8_t CmosRtc::read_register(uint8_t index) {
  if (index == kStatusA) {
    const uint64_t into_second = clock_.now_ns() % kNsPerSecond;
    const bool updating = into_second >= kNsPerSecond - kUpdateInProgressNs;
    return static_cast<uint8_t>((ram_[kStatusA] & 0x7f) | (updating ? 0x80 : 0));
  }
  if (index == kStatusC) {
    const uint8_t flags = ram_[kStatusC];
    ram_[kStatusC] = 0;  // reading C acknowledges every interrupt
    if (irq_level_) {
      irq_level_ = false;
      irqs_.set_irq(kIrq, false);
    }
    return flags;
  }
  if (!is_time_register(index) || (ram_[kStatusB] & kBSet)) return ram_[index];
  if (index == kAlarmSeconds || index == kAlarmMinutes || index == kAlarmHours) return ram_[index];

  const time_t now = static_cast<time_t>(guest_unix_seconds());
  tm t{};
  gmtime_r(&now, &t);
  switch (index) {
    case kSeconds:
      return encode(static_cast<unsigned>(t.tm_sec));
    case kMinutes:
      return encode(static_cast<unsigned>(t.tm_min));
    case kHours: {
      if (ram_[kStatusB] & kB24Hour) return encode(static_cast<unsigned>(t.tm_hour));
      const unsigned hour12 = t.tm_hour % 12 == 0 ? 12 : static_cast<unsigned>(t.tm_hour % 12);
      return static_cast<uint8_t>(encode(hour12) | (t.tm_hour >= 12 ? 0x80 : 0));
    }
    case kWeekday:
      return encode(static_cast<unsigned>(t.tm_wday + 1));
    case kDayOfMonth:
      return encode(static_cast<unsigned>(t.tm_mday));
    case kMonth:
      return encode(static_cast<unsigned>(t.tm_mon + 1));
    case kYear:
      return encode(static_cast<unsigned>((t.tm_year + 1900) % 100));
    default:  // century
      return encode(static_cast<unsigned>((t.tm_year + 1900) / 100));
  }
}

void CmosRtc::commit_written_time() {
  tm t{};
  t.tm_sec = static_cast<int>(decode(ram_[kSeconds]));
  t.tm_min = static_cast<int>(decode(ram_[kMinutes]));
  unsigned hour = decode(ram_[kHours] & 0x7f);
  if (!(ram_[kStatusB] & kB24Hour)) hour = (hour % 12) + ((ram_[kHours] & 0x80) ? 12 : 0);
  t.tm_hour = static_cast<int>(hour);
  t.tm_mday = static_cast<int>(decode(ram_[kDayOfMonth]));
  t.tm_mon = static_cast<int>(decode(ram_[kMonth])) - 1;
  const unsigned century = ram_[kCentury] ? decode(ram_[kCentury]) : 20;
  t.tm_year = static_cast<int>(century * 100 + decode(ram_[kYear])) - 1900;
  const int64_t written = static_cast<int64_t>(timegm(&t));
  guest_offset_seconds_ =
      written - base_unix_seconds_ - static_cast<int64_t>(clock_.now_ns() / kNsPerSecond);
}

void CmosRtc::write_register(uint8_t index, uint8_t value) {
  switch (index) {
    case kStatusA:
      ram_[kStatusA] = value & 0x7f;  // UIP is read-only
      reschedule(clock_.now_ns());
      return;
    case kStatusB: {
      const bool was_set = ram_[kStatusB] & kBSet;
      if ((value & kBSet) && !was_set) {
        // Freeze the current time into the registers so the guest can edit them.
        for (uint8_t r :
             {kSeconds, kMinutes, kHours, kWeekday, kDayOfMonth, kMonth, kYear, kCentury})
          ram_[r] = read_register(r);
      }
      ram_[kStatusB] = value;
      if (!(value & kBSet) && was_set) commit_written_time();
      reschedule(clock_.now_ns());
      return;
    }
    case kStatusC:
    case kStatusD:
      return;  // read-only
    default:
      ram_[index & 0x7f] = value;
  }
}

uint64_t CmosRtc::periodic_period_ns() const {
  unsigned rate = ram_[kStatusA] & 0x0f;
  if (rate == 0) return 0;
  if (rate <= 2) rate += 7;  // rates 1 and 2 alias 8 and 9 on the MC146818
  return (kNsPerSecond << (rate - 1)) / 32768;
}

void CmosRtc::reschedule(uint64_t now_ns) {
  const uint8_t b = ram_[kStatusB];
  const uint64_t period = periodic_period_ns();
  next_periodic_ns_ =
      (b & kBPeriodicEnable) && period ? (now_ns / period + 1) * period : kNoDeadline;
  next_second_ns_ = (b & (kBUpdateEndedEnable | kBAlarmEnable)) && !(b & kBSet)
                        ? (now_ns / kNsPerSecond + 1) * kNsPerSecond
                        : kNoDeadline;
}

void CmosRtc::raise(uint8_t flags) {
  ram_[kStatusC] |= flags | kCIrqFlag;
  if (!irq_level_) {
    irq_level_ = true;
    irqs_.set_irq(kIrq, true);
  }
}

uint64_t CmosRtc::next_deadline_ns() const {
  return next_periodic_ns_ < next_second_ns_ ? next_periodic_ns_ : next_second_ns_;
}

void CmosRtc::advance_to(uint64_t now_ns) {
  uint8_t flags = 0;
  if (now_ns >= next_periodic_ns_) flags |= kCPeriodic;
  if (now_ns >= next_second_ns_) {
    const uint8_t b = ram_[kStatusB];
    if (b & kBUpdateEndedEnable) flags |= kCUpdateEnded;
    if (b & kBAlarmEnable) {
      auto matches = [&](uint8_t alarm_index, uint8_t time_index) {
        const uint8_t alarm = ram_[alarm_index];
        return (alarm & 0xc0) == 0xc0 || alarm == read_register(time_index);
      };
      if (matches(kAlarmSeconds, kSeconds) && matches(kAlarmMinutes, kMinutes) &&
          matches(kAlarmHours, kHours))
        flags |= kCAlarm;
    }
  }
  if (flags & kCPeriodic || now_ns >= next_second_ns_) reschedule(now_ns);
  if (flags) raise(flags);
}

void CmosRtc::pio_read(uint16_t port, std::span<uint8_t> data) {
  const uint8_t value = port == kDataPort ? read_register(index_) : 0xff;
  for (auto& byte : data) byte = value;
}

void CmosRtc::pio_write(uint16_t port, std::span<const uint8_t> data) {
  if (data.empty()) return;
  if (port == kIndexPort)
    index_ = data[0] & 0x7f;  // bit 7 masks NMI, which this machine never raises
  else if (port == kDataPort)
    write_register(index_, data[0]);
}

void CmosRtc::save(librr::ByteWriter& out) const {
  out.i64(base_unix_seconds_);
  out.i64(guest_offset_seconds_);
  out.u8(index_);
  out.raw(ram_, sizeof ram_);
  out.boolean(irq_level_);
  out.u64(next_periodic_ns_);
  out.u64(next_second_ns_);
}

void CmosRtc::load(librr::ByteReader& in) {
  base_unix_seconds_ = in.i64();
  guest_offset_seconds_ = in.i64();
  index_ = in.u8() & 0x7f;
  in.raw_into(ram_, sizeof ram_);
  irq_level_ = in.boolean();
  next_periodic_ns_ = in.u64();
  next_second_ns_ = in.u64();
}

}  // namespace vmm
