#pragma once
// The errors of replaying a recording to a position, reported the same way
// by every command that travels (at, ps, dmesg...): one line on stderr and
// the exit code docs/analyzer.md documents.
#include <exception>

namespace analyzer {

// Call from a catch handler with std::current_exception(). Returns the exit
// code for a bad position, a position past the end, a divergence or a damaged
// recording; rethrows anything else.
int report_travel_error(std::exception_ptr error);

}  // namespace analyzer
