#include "devices/pic8259.h"

#include "librr/error.h"

namespace vmm {
namespace {
constexpr unsigned kCascadeLine = 2;
constexpr unsigned kNoLine = 8;
}  // namespace

Pic8259::Pic8259() {
  // IRQ 0, 1, 2 (master) and 8, 13 (slave) are edge-only on PC hardware.
  chips_[0].elcr_writable_mask = 0xf8;
  chips_[1].elcr_writable_mask = 0xde;
  chips_[0].wired_level_mask = 1u << kCascadeLine;
}

void Pic8259::Chip::set_line(unsigned irq, bool level) {
  const uint8_t bit = static_cast<uint8_t>(1u << irq);
  if (level_mask() & bit) {
    if (level)
      irr |= bit;
    else
      irr &= static_cast<uint8_t>(~bit);
  } else if (level && !(line_levels & bit)) {
    irr |= bit;  // rising edge
  }
  if (level)
    line_levels |= bit;
  else
    line_levels &= static_cast<uint8_t>(~bit);
}

unsigned Pic8259::Chip::priority_of(uint8_t mask) const {
  if (mask == 0) return kNoLine;
  unsigned priority = 0;
  while (!(mask & (1u << ((priority + lowest_priority_rotation) & 7)))) ++priority;
  return priority;
}

int Pic8259::Chip::pending_line(bool is_master) const {
  const unsigned request = priority_of(static_cast<uint8_t>(irr & ~imr));
  if (request == kNoLine) return -1;
  // A request wins only if it has higher priority than everything in service.
  // In special fully nested mode the slave's line may interrupt itself, so
  // the slave can deliver a higher-priority request while one is in service.
  uint8_t in_service = isr;
  if (special_mask) in_service &= static_cast<uint8_t>(~imr);
  if (is_master && special_fully_nested) in_service &= static_cast<uint8_t>(~(1u << kCascadeLine));
  if (request < priority_of(in_service))
    return static_cast<int>((request + lowest_priority_rotation) & 7);
  return -1;
}

void Pic8259::Chip::acknowledge_line(unsigned irq) {
  const uint8_t bit = static_cast<uint8_t>(1u << irq);
  if (auto_eoi) {
    if (rotate_on_auto_eoi) lowest_priority_rotation = static_cast<uint8_t>((irq + 1) & 7);
  } else {
    isr |= bit;
  }
  // A level-triggered request stays asserted until the device lowers the line.
  if (!(level_mask() & bit)) irr &= static_cast<uint8_t>(~bit);
}

void Pic8259::Chip::reset_for_icw1() {
  const uint8_t keep_elcr = elcr, keep_mask = elcr_writable_mask, keep_wired = wired_level_mask;
  const uint8_t keep_levels = line_levels;
  *this = Chip{};
  elcr = keep_elcr;
  elcr_writable_mask = keep_mask;
  wired_level_mask = keep_wired;
  line_levels = keep_levels;  // input wires do not change when the chip is reprogrammed
}

void Pic8259::Chip::write_command(uint8_t value) {
  if (value & 0x10) {  // ICW1
    reset_for_icw1();
    init_step = 1;
    expect_icw4 = value & 0x01;
    single_mode = value & 0x02;
    level_triggered_all = value & 0x08;
    return;
  }
  if (value & 0x08) {  // OCW3
    if (value & 0x04) poll_next_read = true;
    if (value & 0x02) read_isr = value & 0x01;
    if (value & 0x40) special_mask = (value >> 5) & 1;
    return;
  }
  // OCW2: end-of-interrupt and rotation commands.
  const unsigned command = value >> 5;
  switch (command) {
    case 0:  // clear rotate in auto-EOI mode
    case 4:  // set rotate in auto-EOI mode
      rotate_on_auto_eoi = command == 4;
      break;
    case 1:    // non-specific EOI
    case 5: {  // rotate on non-specific EOI
      const unsigned priority = priority_of(isr);
      if (priority == kNoLine) break;
      const unsigned irq = (priority + lowest_priority_rotation) & 7;
      isr &= static_cast<uint8_t>(~(1u << irq));
      if (command == 5) lowest_priority_rotation = static_cast<uint8_t>((irq + 1) & 7);
      break;
    }
    case 3:    // specific EOI
    case 7: {  // rotate on specific EOI
      const unsigned irq = value & 7;
      isr &= static_cast<uint8_t>(~(1u << irq));
      if (command == 7) lowest_priority_rotation = static_cast<uint8_t>((irq + 1) & 7);
      break;
    }
    case 6:  // set priority: line value&7 becomes the lowest priority
      lowest_priority_rotation = static_cast<uint8_t>((value + 1) & 7);
      break;
    default:  // 2: no operation
      break;
  }
}

void Pic8259::Chip::write_data(uint8_t value) {
  switch (init_step) {
    case 0:  // OCW1
      imr = value;
      break;
    case 1:  // ICW2
      vector_base = value & 0xf8;
      init_step = single_mode ? (expect_icw4 ? 3 : 0) : 2;
      break;
    case 2:  // ICW3 (cascade wiring is fixed on a PC; value ignored)
      init_step = expect_icw4 ? 3 : 0;
      break;
    default:  // ICW4
      special_fully_nested = (value >> 4) & 1;
      auto_eoi = (value >> 1) & 1;
      init_step = 0;
      break;
  }
}

void Pic8259::update_cascade() {
  chips_[0].set_line(kCascadeLine, chips_[1].pending_line(false) >= 0);
}

void Pic8259::set_irq(unsigned line, bool level) {
  if (line >= 16) throw librr::Error("PIC: IRQ line " + std::to_string(line) + " out of range");
  chips_[line / 8].set_line(line % 8, level);
  update_cascade();
}

bool Pic8259::has_pending_interrupt() const { return chips_[0].pending_line(true) >= 0; }

uint8_t Pic8259::acknowledge() {
  Chip& master = chips_[0];
  Chip& slave = chips_[1];
  const int irq = master.pending_line(true);
  uint8_t vector;
  if (irq < 0) {
    vector = master.vector_base + 7;  // spurious
  } else {
    master.acknowledge_line(static_cast<unsigned>(irq));
    if (static_cast<unsigned>(irq) == kCascadeLine) {
      const int slave_irq = slave.pending_line(false);
      if (slave_irq >= 0) {
        slave.acknowledge_line(static_cast<unsigned>(slave_irq));
        vector = static_cast<uint8_t>(slave.vector_base + slave_irq);
      } else {
        vector = slave.vector_base + 7;  // spurious on the slave
      }
    } else {
      vector = static_cast<uint8_t>(master.vector_base + irq);
    }
  }
  update_cascade();
  return vector;
}

uint8_t Pic8259::poll(unsigned chip) {
  Chip& c = chips_[chip];
  c.poll_next_read = false;
  const int irq = c.pending_line(chip == 0);
  if (irq < 0) return 0;
  c.acknowledge_line(static_cast<unsigned>(irq));
  update_cascade();
  return static_cast<uint8_t>(0x80 | irq);
}

void Pic8259::pio_read(uint16_t port, std::span<uint8_t> data) {
  uint8_t value = 0xff;
  if (port == kElcrBase || port == kElcrBase + 1) {
    value = chips_[port - kElcrBase].elcr;
  } else {
    const unsigned chip = port >= kSlaveBase ? 1 : 0;
    const bool data_port = port & 1;
    Chip& c = chips_[chip];
    if (c.poll_next_read)
      value = poll(chip);
    else if (data_port)
      value = c.imr;
    else
      value = c.read_isr ? c.isr : c.irr;
  }
  for (auto& byte : data) byte = value;
}

void Pic8259::pio_write(uint16_t port, std::span<const uint8_t> data) {
  if (data.empty()) return;
  const uint8_t value = data[0];
  if (port == kElcrBase || port == kElcrBase + 1) {
    Chip& c = chips_[port - kElcrBase];
    c.elcr = value & c.elcr_writable_mask;
  } else {
    Chip& c = chips_[port >= kSlaveBase ? 1 : 0];
    if (port & 1)
      c.write_data(value);
    else
      c.write_command(value);
  }
  update_cascade();
}

void Pic8259::Chip::save(librr::ByteWriter& out) const {
  out.u8(irr);
  out.u8(isr);
  out.u8(imr);
  out.u8(line_levels);
  out.u8(elcr);
  out.u8(vector_base);
  out.u8(lowest_priority_rotation);
  out.u8(init_step);
  out.u8(static_cast<uint8_t>(expect_icw4 | single_mode << 1 | level_triggered_all << 2 |
                              auto_eoi << 3 | rotate_on_auto_eoi << 4 | special_fully_nested << 5 |
                              special_mask << 6 | read_isr << 7));
  out.boolean(poll_next_read);
}

void Pic8259::Chip::load(librr::ByteReader& in) {
  irr = in.u8();
  isr = in.u8();
  imr = in.u8();
  line_levels = in.u8();
  elcr = in.u8() & elcr_writable_mask;
  vector_base = in.u8();
  lowest_priority_rotation = in.u8() & 7;
  init_step = in.u8();
  if (init_step > 3)
    throw librr::FormatError("pic: bad init step", static_cast<int64_t>(in.position()));
  const uint8_t flags = in.u8();
  expect_icw4 = flags & 1;
  single_mode = flags & 2;
  level_triggered_all = flags & 4;
  auto_eoi = flags & 8;
  rotate_on_auto_eoi = flags & 16;
  special_fully_nested = flags & 32;
  special_mask = flags & 64;
  read_isr = flags & 128;
  poll_next_read = in.boolean();
}

void Pic8259::save(librr::ByteWriter& out) const {
  chips_[0].save(out);
  chips_[1].save(out);
}

void Pic8259::load(librr::ByteReader& in) {
  chips_[0].load(in);
  chips_[1].load(in);
}

}  // namespace vmm
