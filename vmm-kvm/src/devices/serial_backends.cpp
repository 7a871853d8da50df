#include "devices/serial_backends.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "librr/error.h"

namespace vmm {

static_assert(sizeof(termios) <= 64, "termios does not fit the opaque buffer");

void FdSerialOutput::write(uint8_t byte) {
  while (::write(fd_, &byte, 1) < 0 && errno == EINTR) {
  }
}

void BufferSerialOutput::write(uint8_t byte) {
  std::lock_guard lock(mutex_);
  data_.push_back(static_cast<char>(byte));
}

std::string BufferSerialOutput::contents() const {
  std::lock_guard lock(mutex_);
  return data_;
}

void SerialInput::notify_data_ready() {
  std::lock_guard lock(callback_mutex_);
  if (data_ready_) data_ready_();
}

size_t QueuedSerialInput::take(std::span<uint8_t> out) {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  while (n < out.size() && !pending_.empty()) {
    out[n++] = pending_.front();
    pending_.pop_front();
  }
  return n;
}

bool QueuedSerialInput::has_data() const {
  std::lock_guard lock(mutex_);
  return !pending_.empty();
}

void QueuedSerialInput::enqueue(std::span<const uint8_t> bytes) {
  {
    std::lock_guard lock(mutex_);
    pending_.insert(pending_.end(), bytes.begin(), bytes.end());
  }
  notify_data_ready();
}

BufferSerialInput::BufferSerialInput(std::string_view data) {
  enqueue({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
}

void BufferSerialInput::push(std::string_view more) {
  enqueue({reinterpret_cast<const uint8_t*>(more.data()), more.size()});
}

FdSerialInput::FdSerialInput(int fd, bool owns) : fd_(fd), owns_(owns) {
  int event = ::eventfd(0, EFD_CLOEXEC);
  if (event < 0) librr::throw_errno("eventfd for serial input");
  stop_event_ = kvm::Fd(event);
  if (::isatty(fd_)) {
    // Raw input so the guest sees each key, but keep ISIG so Ctrl-C still
    // stops rr-vmm.
    termios original{};
    if (::tcgetattr(fd_, &original) == 0) {
      std::memcpy(saved_termios_.data(), &original, sizeof original);
      termios raw = original;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
      raw.c_iflag &= static_cast<tcflag_t>(~(ICRNL | IXON));
      raw.c_cc[VMIN] = 1;
      raw.c_cc[VTIME] = 0;
      restore_terminal_ = ::tcsetattr(fd_, TCSANOW, &raw) == 0;
    }
  }
  reader_ = std::thread([this] { reader_loop(); });
}

FdSerialInput::~FdSerialInput() {
  uint64_t one = 1;
  if (::write(stop_event_.get(), &one, sizeof one) < 0) {
    // The reader would stay blocked; nothing better to do in a destructor.
  }
  if (reader_.joinable()) reader_.join();
  if (restore_terminal_) {
    termios original{};
    std::memcpy(&original, saved_termios_.data(), sizeof original);
    ::tcsetattr(fd_, TCSANOW, &original);
  }
  if (owns_) ::close(fd_);
}

void FdSerialInput::reader_loop() {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
  uint8_t chunk[256];
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!fds[0].revents) continue;
    ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // end of input or error: the guest simply gets no more bytes
    enqueue({chunk, static_cast<size_t>(n)});
  }
}

std::unique_ptr<SerialInput> open_serial_input(const std::string& spec) {
  if (spec == "none") return nullptr;
  if (spec == "stdin") return std::make_unique<FdSerialInput>(0, false);
  if (spec.rfind("unix:", 0) == 0) {
    const std::string path = spec.substr(5);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path)
      throw librr::Error("--serial-in " + spec + ": socket path empty or too long");
    std::memcpy(address.sun_path, path.data(), path.size());
    kvm::Fd socket_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!socket_fd) librr::throw_errno("socket for --serial-in " + spec);
    if (::connect(socket_fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0)
      librr::throw_errno("connect to serial input socket " + path);
    return std::make_unique<FdSerialInput>(socket_fd.release(), true);
  }
  int fd = ::open(spec.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) librr::throw_errno("open serial input " + spec);
  return std::make_unique<FdSerialInput>(fd, true);
}

}  // namespace vmm
