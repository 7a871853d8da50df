#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace librr {

// Base of every error librr throws. Messages name the file, offset or record
// involved, so a user can act on them without a debugger.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Malformed, truncated or tampered input. `offset` is the byte offset in the
// file (or buffer) where the problem was found, or -1 when unknown.
class FormatError : public Error {
 public:
  FormatError(const std::string& what, int64_t offset = -1) : Error(what), offset_(offset) {}
  int64_t offset() const { return offset_; }

 private:
  int64_t offset_;
};

// An operating-system call failed; the message carries errno's text.
class SystemError : public Error {
 public:
  using Error::Error;
};

// Throws SystemError("<context>: <strerror(errno)>").
[[noreturn]] void throw_errno(const std::string& context);

}  // namespace librr
