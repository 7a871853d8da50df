// libFuzzer: the input is the byte stream a debugger sends to
// `rr-analyze gdbserver`. The stream splitter and the request parser must
// take anything without crashing, and what they accept must be consistent:
// every decoded body re-encodes to something that decodes to it again.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "gdb/gdb_packet.h"
#include "gdb/gdb_request.h"

using namespace analyzer::gdb;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  PacketReader reader;
  // Two halves fed separately: packets split across reads must work too.
  const size_t half = size / 2;
  reader.feed({data, half});
  reader.feed({data + half, size - half});
  while (auto item = reader.next()) {
    if (item->kind != StreamItem::Kind::kPacket) continue;
    if (item->body.size() > kMaxPacketBody) std::abort();
    const Request request = parse_request(item->body);
    if (request.kind == Request::Kind::kMalformed && request.annex.empty()) std::abort();
    const auto again = decode_body(encode_body(item->body));
    if (!again || *again != item->body) std::abort();
    // Framing the body as a reply and reading it back gives the same body.
    const std::string framed = frame_packet(item->body);
    PacketReader echo;
    echo.feed({reinterpret_cast<const uint8_t*>(framed.data()), framed.size()});
    const auto echoed = echo.next();
    if (item->body.size() <= kMaxPacketBody / 2 &&
        (!echoed || echoed->kind != StreamItem::Kind::kPacket || echoed->body != item->body))
      std::abort();
  }
  // The raw input as a body: decoding must fail cleanly or succeed.
  (void)decode_body({reinterpret_cast<const char*>(data), size});
  return 0;
}
