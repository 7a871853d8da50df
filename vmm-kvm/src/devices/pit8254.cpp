#include "devices/pit8254.h"

#include "librr/error.h"

namespace vmm {
namespace {
constexpr uint64_t kNsPerSecond = 1'000'000'000;

uint64_t ticks_from_ns(uint64_t ns) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * Pit8254::kInputHz /
                               kNsPerSecond);
}
// First guest time at which `ticks` input-clock ticks have elapsed.
uint64_t ns_from_ticks(uint64_t ticks) {
  return static_cast<uint64_t>(
      (static_cast<unsigned __int128>(ticks) * kNsPerSecond + Pit8254::kInputHz - 1) /
      Pit8254::kInputHz);
}
bool is_periodic(uint8_t mode) { return mode == 2 || mode == 3; }
}  // namespace

Pit8254::Pit8254(Clock& clock, IrqSink& irqs, unsigned irq_line)
    : clock_(clock), irqs_(irqs), irq_line_(irq_line) {}

uint64_t Pit8254::elapsed_ticks(const Channel& c, uint64_t now_ns) const {
  return now_ns > c.load_time_ns ? ticks_from_ns(now_ns - c.load_time_ns) : 0;
}

uint16_t Pit8254::count_at(const Channel& c, uint64_t now_ns) const {
  if (!c.counting) return static_cast<uint16_t>(c.reload);
  const uint64_t ticks = elapsed_ticks(c, now_ns);
  switch (c.mode) {
    case 2:
      return static_cast<uint16_t>(c.reload - ticks % c.reload);
    case 3:  // square wave counts down by two, twice per period
      return static_cast<uint16_t>((c.reload - (2 * ticks) % c.reload) & 0xfffe);
    default:  // 0, 1, 4, 5: count down once and wrap
      return static_cast<uint16_t>((c.reload - ticks) & 0xffff);
  }
}

bool Pit8254::output_at(const Channel& c, uint64_t now_ns) const {
  if (!c.counting) return c.mode != 0;
  const uint64_t ticks = elapsed_ticks(c, now_ns);
  switch (c.mode) {
    case 0:
      return ticks >= c.reload;
    case 2:  // low for one tick at the end of each period
      return ticks % c.reload != c.reload - 1;
    case 3:
      return ticks % c.reload < (c.reload + 1) / 2;
    case 4:
    case 5:
      return ticks != c.reload;
    default:
      return true;
  }
}

void Pit8254::schedule_irq(Channel& c, uint64_t after_ns) {
  c.next_irq_ns = kNoDeadline;
  if (!c.counting || !c.gate) return;
  if (is_periodic(c.mode)) {
    // One interrupt per period, at each multiple of the reload value.
    const uint64_t ticks = elapsed_ticks(c, after_ns);
    const uint64_t next_period = ticks / c.reload + 1;
    c.next_irq_ns = c.load_time_ns + ns_from_ticks(next_period * c.reload);
  } else if (!c.oneshot_fired) {
    c.next_irq_ns = c.load_time_ns + ns_from_ticks(c.reload);
  }
}

uint64_t Pit8254::next_deadline_ns() const { return channels_[0].next_irq_ns; }

void Pit8254::advance_to(uint64_t now_ns) {
  Channel& c = channels_[0];
  if (c.next_irq_ns == kNoDeadline || now_ns < c.next_irq_ns) return;
  // A pulse: the PIC latches the rising edge. Missed periods coalesce.
  irqs_.set_irq(irq_line_, false);
  irqs_.set_irq(irq_line_, true);
  if (!is_periodic(c.mode)) c.oneshot_fired = true;
  schedule_irq(c, now_ns);
}

void Pit8254::load_count(unsigned index, uint32_t value) {
  Channel& c = channels_[index];
  c.reload = value == 0 ? 0x10000 : value;
  if (c.mode == 3 && c.reload == 1) c.reload = 2;  // mode 3 cannot divide by 1
  if (c.mode == 2 && c.reload == 1) c.reload = 2;
  c.load_time_ns = clock_.now_ns();
  c.counting = true;
  c.oneshot_fired = false;
  if (index == 0) {
    irqs_.set_irq(irq_line_, c.mode != 0);  // mode 0 drives the output low
    schedule_irq(c, c.load_time_ns);
  }
}

void Pit8254::latch_count(Channel& c) {
  if (c.count_latched) return;  // a second latch before reading is ignored
  c.latched_count = count_at(c, clock_.now_ns());
  c.count_latched = true;
  c.latched_access = c.access;
  c.latched_high_next = false;
}

void Pit8254::write_control(uint8_t value) {
  const unsigned select = value >> 6;
  if (select == 3) {  // read-back command
    const uint64_t now = clock_.now_ns();
    for (unsigned i = 0; i < 3; ++i) {
      if (!(value & (2u << i))) continue;
      Channel& c = channels_[i];
      if (!(value & 0x20)) latch_count(c);
      if (!(value & 0x10) && !c.status_latched) {
        c.latched_status =
            static_cast<uint8_t>((output_at(c, now) ? 0x80 : 0) | (c.counting ? 0 : 0x40) |
                                 (c.access << 4) | (c.mode << 1) | (c.bcd ? 1 : 0));
        c.status_latched = true;
      }
    }
    return;
  }
  Channel& c = channels_[select];
  const uint8_t access = (value >> 4) & 3;
  if (access == kLatch) {
    latch_count(c);
    return;
  }
  c.access = access;
  c.mode = (value >> 1) & 7;
  if (c.mode > 5) c.mode -= 4;  // 6 and 7 alias modes 2 and 3
  c.bcd = value & 1;
  c.counting = false;
  c.write_high_next = false;
  c.read_high_next = false;
  c.next_irq_ns = kNoDeadline;
  if (select == 0) irqs_.set_irq(irq_line_, c.mode != 0);
}

uint8_t Pit8254::read_counter(unsigned index) {
  Channel& c = channels_[index];
  if (c.status_latched) {
    c.status_latched = false;
    return c.latched_status;
  }
  uint16_t count;
  bool high;
  if (c.count_latched) {
    count = c.latched_count;
    if (c.latched_access == kWord) {
      high = c.latched_high_next;
      c.latched_high_next = !high;
      if (high) c.count_latched = false;
    } else {
      high = c.latched_access == kHighByte;
      c.count_latched = false;
    }
  } else {
    count = count_at(c, clock_.now_ns());
    if (c.access == kWord) {
      high = c.read_high_next;
      c.read_high_next = !high;
    } else {
      high = c.access == kHighByte;
    }
  }
  return static_cast<uint8_t>(high ? count >> 8 : count);
}

void Pit8254::pio_read(uint16_t port, std::span<uint8_t> data) {
  uint8_t value = 0xff;
  if (port >= kBasePort && port < kControlPort) {
    value = read_counter(port - kBasePort);
  } else if (port == kSystemControlPort) {
    const bool out2 = output_at(channels_[2], clock_.now_ns());
    value = static_cast<uint8_t>(speaker_bits_ | (out2 ? 0x20 : 0));
  }
  for (auto& byte : data) byte = value;
}

void Pit8254::pio_write(uint16_t port, std::span<const uint8_t> data) {
  if (data.empty()) return;
  const uint8_t value = data[0];
  if (port == kControlPort) {
    write_control(value);
  } else if (port >= kBasePort && port < kControlPort) {
    const unsigned index = port - kBasePort;
    Channel& c = channels_[index];
    switch (c.access) {
      case kLowByte:
        load_count(index, value);
        break;
      case kHighByte:
        load_count(index, static_cast<uint32_t>(value) << 8);
        break;
      default:
        if (!c.write_high_next) {
          c.write_low_byte = value;
          c.write_high_next = true;
        } else {
          c.write_high_next = false;
          load_count(index, c.write_low_byte | static_cast<uint32_t>(value) << 8);
        }
        break;
    }
  } else if (port == kSystemControlPort) {
    Channel& c2 = channels_[2];
    const bool gate = value & 1;
    // A rising gate restarts channel 2's count (modes 1, 2, 3, 5 on real hardware).
    if (gate && !c2.gate && c2.counting) c2.load_time_ns = clock_.now_ns();
    c2.gate = gate;
    speaker_bits_ = value & 0x03;
  }
}

uint16_t Pit8254::current_count(unsigned channel) {
  if (channel >= 3) throw librr::Error("pit: no channel " + std::to_string(channel));
  return count_at(channels_[channel], clock_.now_ns());
}

void Pit8254::save(librr::ByteWriter& out) const {
  for (const Channel& c : channels_) {
    out.u32(c.reload);
    out.u8(c.mode);
    out.u8(c.access);
    out.boolean(c.bcd);
    out.boolean(c.gate);
    out.boolean(c.counting);
    out.u64(c.load_time_ns);
    out.boolean(c.write_high_next);
    out.u8(c.write_low_byte);
    out.boolean(c.read_high_next);
    out.boolean(c.count_latched);
    out.u16(c.latched_count);
    out.u8(c.latched_access);
    out.boolean(c.latched_high_next);
    out.boolean(c.status_latched);
    out.u8(c.latched_status);
    out.boolean(c.oneshot_fired);
    out.u64(c.next_irq_ns);
  }
  out.u8(speaker_bits_);
}

void Pit8254::load(librr::ByteReader& in) {
  for (Channel& c : channels_) {
    c.reload = in.u32();
    c.mode = in.u8();
    c.access = in.u8();
    if (c.reload == 0 || c.reload > 0x10000 || c.mode > 5 || c.access == kLatch || c.access > 3)
      throw librr::FormatError("pit: invalid channel state", static_cast<int64_t>(in.position()));
    c.bcd = in.boolean();
    c.gate = in.boolean();
    c.counting = in.boolean();
    c.load_time_ns = in.u64();
    c.write_high_next = in.boolean();
    c.write_low_byte = in.u8();
    c.read_high_next = in.boolean();
    c.count_latched = in.boolean();
    c.latched_count = in.u16();
    c.latched_access = in.u8();
    c.latched_high_next = in.boolean();
    c.status_latched = in.boolean();
    c.latched_status = in.u8();
    c.oneshot_fired = in.boolean();
    c.next_irq_ns = in.u64();
  }
  speaker_bits_ = in.u8() & 0x03;
}

}  // namespace vmm
