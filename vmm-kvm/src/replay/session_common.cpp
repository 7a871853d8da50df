#include "replay/session_common.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "devices/virtio_net.h"
#include "librr/crypto.h"
#include "replay/memory_shadow.h"

namespace vmm {

RecordingSerialInput::RecordingSerialInput(SerialInput& inner, librr::Recorder& recorder,
                                           const Timeline& timeline)
    : inner_(inner), recorder_(recorder), timeline_(timeline) {
  inner_.set_data_ready_callback([this] { notify_data_ready(); });
}

RecordingSerialInput::~RecordingSerialInput() { inner_.set_data_ready_callback(nullptr); }

size_t RecordingSerialInput::take(std::span<uint8_t> out) {
  const size_t n = inner_.take(out);
  if (n > 0) recorder_.input(timeline_.position(), librr::channels::kSerial0, out.first(n));
  return n;
}

bool ReplaySerialInput::has_data() const {
  if (!pending_.empty()) return true;
  const librr::Event* next = replayer_.peek();
  const auto* input = next ? std::get_if<librr::Input>(next) : nullptr;
  return input && input->pos == timeline_.position() && input->channel == librr::channels::kSerial0;
}

size_t ReplaySerialInput::take(std::span<uint8_t> out) {
  // Gather every serial record logged at this position: record's UART took
  // them here, up to the room it had, which is the room it has now.
  for (;;) {
    const librr::Event* next = replayer_.peek();
    const auto* input = next ? std::get_if<librr::Input>(next) : nullptr;
    if (!input || input->pos != timeline_.position() || input->channel != librr::channels::kSerial0)
      break;
    pending_.insert(pending_.end(), input->data.begin(), input->data.end());
    replayer_.take_at(timeline_.position());
  }
  const size_t n = std::min(out.size(), pending_.size());
  std::copy_n(pending_.begin(), n, out.begin());
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
  return n;
}

size_t RecordingNetInput::pump() {
  return machine_.pump_net([this](std::span<const uint8_t> frame) {
    // Cooperative logging may log a reference instead of the frame (net/cooperation.h).
    net::Cooperation* cooperation = machine_.net() ? machine_.net()->cooperation() : nullptr;
    if (cooperation) {
      net::LoggedFrame logged = cooperation->log_received(frame);
      recorder_.input(timeline_.position(), logged.channel, logged.data);
    } else {
      recorder_.input(timeline_.position(), librr::channels::kNet0, frame);
    }
    ++frames_;
    bytes_ += frame.size();
  });
}

bool ReplayNetInput::next_is_frame() const {
  const librr::Event* next = replayer_.peek();
  const auto* input = next ? std::get_if<librr::Input>(next) : nullptr;
  return input && input->pos == timeline_.position() &&
         net::is_received_frame_channel(input->channel);
}

size_t ReplayNetInput::deliver_logged() {
  size_t delivered = 0;
  while (next_is_frame()) {
    virtio::VirtioNet* net = machine_.net();
    if (!net)
      throw librr::Divergence(timeline_.position(),
                              "the log delivers a network frame here, but the machine has no "
                              "virtio-net device");
    const auto& input = std::get<librr::Input>(*replayer_.peek());
    if (input.channel == net::kNetReferenceChannel) {
      // A frame another recorded host sent or the gateway logged (cooperative logging).
      net::FrameReference reference = net::decode_frame_reference(input.data);
      if (!net->cooperation())
        throw librr::Error(fmt::format(
            "position {}: the recording logged a reference to frame #{} of '{}' instead of the "
            "frame; replay with --resolve-from (the gateway log or that host's recording)",
            timeline_.position().landmark, reference.sequence, reference.sender));
      std::vector<uint8_t> frame = net->cooperation()->resolve(reference);
      net->deliver_frame(frame);
    } else {
      net->deliver_frame(input.data);
    }
    replayer_.take_at(timeline_.position());
    ++delivered;
  }
  return delivered;
}

}  // namespace vmm
