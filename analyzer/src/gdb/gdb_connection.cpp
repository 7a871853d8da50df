#include "gdb/gdb_connection.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <utility>

#include "librr/error.h"

namespace analyzer::gdb {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string supported_features() {
  return fmt::format(
      "PacketSize={:x};QStartNoAckMode+;qXfer:features:read+;swbreak+;hwbreak+;"
      "ReverseStep+;ReverseContinue+;vContSupported+",
      kMaxPacketBody);
}

GdbServerConnection::GdbServerConnection(UniqueFd socket, std::string target_xml,
                                         std::function<bool()> should_stop)
    : socket_(std::move(socket)),
      target_xml_(std::move(target_xml)),
      should_stop_(std::move(should_stop)) {}

void GdbServerConnection::write_all(std::string_view bytes) {
  while (!bytes.empty() && !peer_closed_) {
    const ssize_t n = ::send(socket_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      // EPIPE/ECONNRESET: gdb went away; the next read reports it.
      peer_closed_ = true;
      return;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

bool wait_readable(int fd, int interrupt_fd) {
  if (interrupt_fd < 0) return true;
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {interrupt_fd, POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return true;  // let the read or accept report the error
    if (fds[1].revents != 0) return false;
    return true;
  }
}

bool GdbServerConnection::read_more() {
  std::array<uint8_t, 4096> buffer;
  for (;;) {
    if (peer_closed_) return false;
    // A signal that arrived while a replay request ran did not interrupt
    // this read; honour it before blocking.
    if (should_stop_ && should_stop_()) return false;
    if (!wait_readable(socket_.get(), interrupt_fd_)) return false;
    const ssize_t n = ::read(socket_.get(), buffer.data(), buffer.size());
    if (n > 0) {
      reader_.feed({buffer.data(), static_cast<size_t>(n)});
      return true;
    }
    if (n < 0 && errno == EINTR) {
      if (should_stop_ && should_stop_()) return false;
      continue;
    }
    peer_closed_ = true;  // EOF or a socket error
    return false;
  }
}

void GdbServerConnection::send_reply(std::string_view body) {
  if (trace_) fmt::print(trace_, "gdb <- {}\n", body.substr(0, 200));
  last_reply_frame_ = frame_packet(body);
  write_all(last_reply_frame_);
}

void GdbServerConnection::send_stop_reply(const StopReply& stop) {
  send_reply(format_stop_reply(stop));
  stop_reply_sent_ = true;
  packets_since_stop_reply_ = 0;
}

void GdbServerConnection::send_console_output(std::string_view text) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  send_reply("O" + to_hex({bytes, text.size()}));
}

void GdbServerConnection::send_error(int code) { send_reply(fmt::format("E{:02x}", code & 0xff)); }

bool GdbServerConnection::interrupt_requested() {
  if (!socket_ || peer_closed_) return true;
  if (should_stop_ && should_stop_()) return true;
  pollfd readable{socket_.get(), POLLIN, 0};
  if (::poll(&readable, 1, 0) > 0) {
    std::array<uint8_t, 4096> buffer;
    const ssize_t n = ::read(socket_.get(), buffer.data(), buffer.size());
    if (n > 0)
      reader_.feed({buffer.data(), static_cast<size_t>(n)});
    else if (n == 0 || errno != EINTR)
      peer_closed_ = true;  // next_request() reports it
  }
  bool interrupt = peer_closed_;
  while (auto item = reader_.next()) {
    if (item->kind == StreamItem::Kind::kInterrupt) {
      if (trace_) fmt::print(trace_, "gdb -> interrupt (0x03) while running\n");
      interrupt = true;
    } else
      read_ahead_.push_back(std::move(*item));
  }
  return interrupt;
}

bool GdbServerConnection::take_interrupt_before_resume() {
  return std::exchange(interrupt_before_resume_, false);
}

std::optional<Request> GdbServerConnection::next_request() {
  for (;;) {
    std::optional<StreamItem> item;
    if (!read_ahead_.empty()) {
      item = std::move(read_ahead_.front());
      read_ahead_.pop_front();
    }
    while (!item && !(item = reader_.next())) {
      if (!read_more()) return std::nullopt;
    }
    switch (item->kind) {
      case StreamItem::Kind::kAck:
        break;
      case StreamItem::Kind::kNack:
        if (!no_ack_mode_ && !last_reply_frame_.empty()) write_all(last_reply_frame_);
        break;
      case StreamItem::Kind::kInterrupt: {
        // An interrupt while a continue ran is taken by interrupt_requested().
        const bool for_next_resume = stop_reply_sent_ && packets_since_stop_reply_ > 0;
        if (for_next_resume) interrupt_before_resume_ = true;
        if (trace_)
          fmt::print(trace_, "gdb -> interrupt (0x03) while stopped: {}\n",
                     for_next_resume ? "kept for the next resume" : "crossed the stop reply");
        break;
      }
      case StreamItem::Kind::kBadChecksum:
        if (trace_) fmt::print(trace_, "gdb -> bad packet: {}\n", item->body);
        if (!no_ack_mode_)
          write_all("-");
        else
          send_error();  // without acks gdb would wait forever for an answer
        break;
      case StreamItem::Kind::kBadPacket:
        if (trace_) fmt::print(trace_, "gdb -> bad packet: {}\n", item->body);
        if (!no_ack_mode_) write_all("+");
        send_error();
        break;
      case StreamItem::Kind::kPacket: {
        if (trace_) fmt::print(trace_, "gdb -> {}\n", item->body.substr(0, 200));
        if (!no_ack_mode_) write_all("+");
        ++packets_since_stop_reply_;
        Request request = parse_request(item->body);
        if (!answer_session_request(request)) return request;
        break;
      }
    }
  }
}

bool GdbServerConnection::answer_session_request(const Request& request) {
  using Kind = Request::Kind;
  switch (request.kind) {
    case Kind::kUnknown:
    case Kind::kMustReplyEmpty:
      send_reply("");
      return true;
    case Kind::kMalformed:
      if (trace_) fmt::print(trace_, "malformed request {}\n", request.annex);
      send_error();
      return true;
    case Kind::kQuerySupported:
      send_reply(supported_features());
      return true;
    case Kind::kStartNoAckMode:
      send_ok();
      no_ack_mode_ = true;  // gdb acknowledges this OK, then nobody acks
      return true;
    case Kind::kReadFeatures: {
      if (request.annex != "target.xml") {
        send_error(0);
        return true;
      }
      if (request.address >= target_xml_.size()) {
        send_reply("l");
        return true;
      }
      const std::string_view rest = std::string_view(target_xml_).substr(request.address);
      const size_t length = std::min<uint64_t>(request.length, kMaxPacketBody - 1);
      send_reply((length >= rest.size() ? "l" : "m") + std::string(rest.substr(0, length)));
      return true;
    }
    case Kind::kQueryAttached:
      send_reply("1");  // quitting gdb detaches rather than kills
      return true;
    case Kind::kQueryCurrentThread:
      send_reply(fmt::format("QC{:x}", kThreadId));
      return true;
    case Kind::kThreadInfoFirst:
      send_reply(fmt::format("m{:x}", kThreadId));
      return true;
    case Kind::kThreadInfoNext:
      send_reply("l");
      return true;
    case Kind::kSetThread:
    case Kind::kThreadAlive:
      send_ok();
      return true;
    case Kind::kVContQuery:
      send_reply("vCont;c;C;s;S");
      return true;
    default:
      return false;
  }
}

}  // namespace analyzer::gdb
