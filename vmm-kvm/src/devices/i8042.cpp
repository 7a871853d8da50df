#include "devices/i8042.h"

#include "librr/error.h"

namespace vmm {
namespace {
constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusLastWasCommand = 0x08;

constexpr uint8_t kReadCommandByte = 0x20;
constexpr uint8_t kWriteCommandByte = 0x60;
constexpr uint8_t kSelfTest = 0xaa;
constexpr uint8_t kKeyboardInterfaceTest = 0xab;
constexpr uint8_t kAuxInterfaceTest = 0xa9;
constexpr uint8_t kReadOutputPort = 0xd0;
constexpr uint8_t kWriteOutputPort = 0xd1;
constexpr size_t kMaxQueuedResponses = 16;
}  // namespace

void I8042::respond(uint8_t value) {
  if (output_.size() < kMaxQueuedResponses) output_.push_back(value);
}

void I8042::command(uint8_t value) {
  switch (value) {
    case kReadCommandByte:
      respond(command_byte_);
      break;
    case kWriteCommandByte:
    case kWriteOutputPort:
      pending_command_ = value;
      break;
    case kSelfTest:
      respond(0x55);
      break;
    case kKeyboardInterfaceTest:
    case kAuxInterfaceTest:
      respond(0x00);
      break;
    case kReadOutputPort:
      respond(output_port_);
      break;
    default:
      // 0xF0-0xFF pulse output-port lines; bit 0 low (e.g. 0xFE) pulses CPU reset.
      if ((value & 0xf0) == 0xf0 && !(value & 0x01)) power_.request_reset();
      // Other commands (enable/disable keyboard or aux port, ...) need no response.
      break;
  }
}

void I8042::data_write(uint8_t value) {
  const uint8_t pending = pending_command_;
  pending_command_ = 0;
  if (pending == kWriteCommandByte) {
    command_byte_ = value;
  } else if (pending == kWriteOutputPort) {
    output_port_ = value;
    if (!(value & 0x01)) power_.request_reset();
  }
  // Bytes for the (absent) keyboard are dropped.
}

void I8042::pio_read(uint16_t port, std::span<uint8_t> data) {
  uint8_t value = 0xff;
  if (port == kDataPort) {
    value = 0;
    if (!output_.empty()) {
      value = output_.front();
      output_.pop_front();
    }
  } else if (port == kCommandPort) {
    value = static_cast<uint8_t>(kStatusSystemFlag | (output_.empty() ? 0 : kStatusOutputFull) |
                                 (pending_command_ ? kStatusLastWasCommand : 0));
  }
  for (auto& byte : data) byte = value;
}

void I8042::pio_write(uint16_t port, std::span<const uint8_t> data) {
  if (data.empty()) return;
  if (port == kCommandPort)
    command(data[0]);
  else if (port == kDataPort)
    data_write(data[0]);
}

void I8042::save(librr::ByteWriter& out) const {
  out.u8(command_byte_);
  out.u8(pending_command_);
  out.u8(output_port_);
  out.u8(static_cast<uint8_t>(output_.size()));
  for (uint8_t byte : output_) out.u8(byte);
}

void I8042::load(librr::ByteReader& in) {
  command_byte_ = in.u8();
  pending_command_ = in.u8();
  output_port_ = in.u8();
  const size_t count = in.u8();
  if (count > kMaxQueuedResponses)
    throw librr::FormatError("i8042: " + std::to_string(count) + " queued bytes",
                             static_cast<int64_t>(in.position()));
  output_.clear();
  for (size_t i = 0; i < count; ++i) output_.push_back(in.u8());
}

}  // namespace vmm
