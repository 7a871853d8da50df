#pragma once
// GdbServerConnection: one gdb session on a stream socket (rr's split: this
// class is the protocol, GdbServer maps requests onto the replay).
// It acknowledges packets until QStartNoAckMode, retransmits on '-',
// answers the session-level queries itself (qSupported, thread list,
// target description, vCont?) and hands every target request to the caller.
#include <cstdio>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "gdb/gdb_packet.h"
#include "gdb/gdb_request.h"

namespace analyzer::gdb {

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset();
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

class GdbServerConnection {
 public:
  // should_stop is asked when a blocking read is interrupted by a signal
  // (SIGINT): true ends the session as if gdb had disconnected.
  GdbServerConnection(UniqueFd socket, std::string target_xml,
                      std::function<bool()> should_stop = {});

  // Blocks until gdb sends a target request. nullopt when gdb closed the
  // connection (or should_stop said so).
  std::optional<Request> next_request();
  // Without blocking: must the running request stop? True when gdb sent its
  // interrupt (0x03, Ctrl-C) since the last request, when gdb hung up (no
  // one waits for the rest of a long continue; next_request() then reports
  // the disconnect) or when should_stop says the session ends. Other bytes
  // read on the way are kept for next_request(). Polled by the replay while
  // a continue runs.
  bool interrupt_requested();
  // Did gdb send its interrupt while the target was stopped, meant for the
  // next resume? Once gdb gives the target the terminal for a continue, a
  // Ctrl-C is forwarded as 0x03 at once, which can be before the resume
  // packet itself; the resume must then stop at once (gdbserver does the
  // same: the SIGINT stays pending in the stopped inferior). An interrupt
  // right after a stop reply, before gdb's next packet, was sent while gdb
  // still thought the target ran and only crossed the reply: it is dropped.
  // Taking the answer clears it.
  bool take_interrupt_before_resume();

  void send_reply(std::string_view body);
  void send_ok() { send_reply("OK"); }
  // "Enn"; the protocol gives the number no meaning, gdb prints it.
  void send_error(int code = 1);
  void send_stop_reply(const StopReply& stop);
  // An 'O' packet: gdb prints `text` on its console. Allowed only while gdb
  // waits for a stop reply (after a step or continue request).
  void send_console_output(std::string_view text);

  bool no_ack_mode() const { return no_ack_mode_; }
  bool connected() const { return socket_ && !peer_closed_; }
  // Logs every packet in and out to `trace` (nullptr: off).
  void set_trace(std::FILE* trace) { trace_ = trace; }
  // A descriptor that becomes readable when the session must end (the
  // read end of a signal handler's self-pipe). A signal may be delivered to
  // another thread of the process, where it would not interrupt our read.
  void set_interrupt_fd(int fd) { interrupt_fd_ = fd; }

 private:
  // Answers session-level requests; false for target requests.
  bool answer_session_request(const Request& request);
  void write_all(std::string_view bytes);
  bool read_more();

  UniqueFd socket_;
  std::string target_xml_;
  std::function<bool()> should_stop_;
  PacketReader reader_;
  std::deque<StreamItem> read_ahead_;  // items taken by interrupt_requested()
  std::string last_reply_frame_;
  bool no_ack_mode_ = false;
  bool peer_closed_ = false;
  // For take_interrupt_before_resume(): packets from gdb since our last
  // stop reply (none sent yet: nothing has run that an interrupt crossed).
  bool stop_reply_sent_ = false;
  uint64_t packets_since_stop_reply_ = 0;
  bool interrupt_before_resume_ = false;
  std::FILE* trace_ = nullptr;
  int interrupt_fd_ = -1;
};

// Waits until `fd` is readable; false if `interrupt_fd` (when >= 0) became
// readable first. Retries on EINTR.
bool wait_readable(int fd, int interrupt_fd);

// The reply to qSupported.
std::string supported_features();

}  // namespace analyzer::gdb
