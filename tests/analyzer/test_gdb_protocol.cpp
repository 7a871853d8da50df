// The GDB remote protocol layer on its own: checksums, escaping and
// run-length encoding, the stream splitter, request parsing, and a
// GdbServerConnection talking to a fake gdb over a socketpair.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gdb/gdb_connection.h"
#include "gdb/gdb_packet.h"
#include "gdb/gdb_request.h"

namespace {

using namespace analyzer::gdb;
using Kind = Request::Kind;

TEST(GdbPacket, ChecksumIsTheByteSumModulo256) {
  EXPECT_EQ(checksum(""), 0);
  EXPECT_EQ(checksum("OK"), 0x9a);
  EXPECT_EQ(frame_packet("OK"), "$OK#9a");
  EXPECT_EQ(frame_packet(""), "$#00");
  // 'g' is 0x67: the packet gdb sends to read registers.
  EXPECT_EQ(frame_packet("g"), "$g#67");
}

TEST(GdbPacket, ReservedBytesAreEscaped) {
  const std::string body = std::string("a$b#c}d*e");
  const std::string encoded = encode_body(body);
  EXPECT_EQ(encoded,
            "a}\x04"
            "b}\x03"
            "c}]d}\x0a"
            "e");
  EXPECT_EQ(decode_body(encoded), body);
}

TEST(GdbPacket, RunLengthEncodingMatchesTheManualsExample) {
  // "0* " means four zeros (' ' is 29 + 3 repeats).
  EXPECT_EQ(decode_body("0* "), "0000");
  EXPECT_EQ(encode_body("0000"), "0* ");
  EXPECT_EQ(encode_body("000"), "000");  // too short to be worth a repeat
}

TEST(GdbPacket, RunLengthNeverProducesHashOrDollar) {
  for (size_t run = 1; run < 400; ++run) {
    const std::string body = "x" + std::string(run, '0') + "y";
    const std::string encoded = encode_body(body);
    EXPECT_EQ(encoded.find('#'), std::string::npos) << run;
    EXPECT_EQ(encoded.find('$'), std::string::npos) << run;
    EXPECT_EQ(decode_body(encoded), body) << run;
  }
}

TEST(GdbPacket, BinaryDataRoundTrips) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i)
    all_bytes.append(static_cast<size_t>(i % 7 + 1), static_cast<char>(i));
  EXPECT_EQ(decode_body(encode_body(all_bytes)), all_bytes);
}

TEST(GdbPacket, BadEncodingsAreRejected) {
  EXPECT_FALSE(decode_body("abc}").has_value());    // escape at the end
  EXPECT_FALSE(decode_body("*!").has_value());      // repeat with nothing before it
  EXPECT_FALSE(decode_body("a*").has_value());      // repeat without a count
  EXPECT_FALSE(decode_body("a*\x01").has_value());  // negative count
}

TEST(GdbPacket, HexHelpers) {
  const std::vector<uint8_t> bytes = {0x00, 0x7f, 0xff, 0x10};
  EXPECT_EQ(to_hex(bytes), "007fff10");
  EXPECT_EQ(from_hex("007FfF10"), bytes);
  EXPECT_FALSE(from_hex("abc").has_value());
  EXPECT_FALSE(from_hex("zz").has_value());
  EXPECT_EQ(parse_hex_number("ffffffff81000000"), 0xffffffff81000000u);
  EXPECT_FALSE(parse_hex_number("").has_value());
  EXPECT_FALSE(parse_hex_number("1ffffffffffffffff").has_value());  // 17 digits
  EXPECT_FALSE(parse_hex_number("-1").has_value());
}

std::vector<StreamItem> split(std::string_view stream, bool byte_by_byte) {
  PacketReader reader;
  std::vector<StreamItem> items;
  auto drain = [&] {
    while (auto item = reader.next()) items.push_back(*item);
  };
  if (byte_by_byte) {
    for (char c : stream) {
      const uint8_t byte = static_cast<uint8_t>(c);
      reader.feed({&byte, 1});
      drain();
    }
  } else {
    reader.feed({reinterpret_cast<const uint8_t*>(stream.data()), stream.size()});
    drain();
  }
  return items;
}

TEST(GdbPacketReader, SplitsAcksInterruptsAndPackets) {
  const std::string stream =
      "+$OK#9a-\x03noise$g#00$0* #" + fmt::format("{:02x}", checksum("0* ")) + "$a}#" +
      fmt::format("{:02x}", checksum("a}")) + "$m0,1#" + fmt::format("{:02x}", checksum("m0,1"));
  for (bool byte_by_byte : {false, true}) {
    const auto items = split(stream, byte_by_byte);
    ASSERT_EQ(items.size(), 8u) << byte_by_byte;
    EXPECT_EQ(items[0].kind, StreamItem::Kind::kAck);
    EXPECT_EQ(items[1].kind, StreamItem::Kind::kPacket);
    EXPECT_EQ(items[1].body, "OK");
    EXPECT_EQ(items[2].kind, StreamItem::Kind::kNack);
    EXPECT_EQ(items[3].kind, StreamItem::Kind::kInterrupt);
    EXPECT_EQ(items[4].kind, StreamItem::Kind::kBadChecksum);  // "$g#00": wrong sum
    EXPECT_EQ(items[5].kind, StreamItem::Kind::kPacket);
    EXPECT_EQ(items[5].body, "0000");  // decoded
    // "a}": the checksum is right but the body ends inside an escape.
    EXPECT_EQ(items[6].kind, StreamItem::Kind::kBadPacket);
    EXPECT_EQ(items[7].kind, StreamItem::Kind::kPacket);
    EXPECT_EQ(items[7].body, "m0,1");
  }
}

TEST(GdbPacketReader, OversizedPacketIsReportedNotBuffered) {
  const std::string huge = "$" + std::string(kMaxPacketBody + 100, 'a') + "#00";
  const auto items = split(huge, false);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].kind, StreamItem::Kind::kBadPacket);
  EXPECT_NE(items[0].body.find("longer than"), std::string::npos);
}

TEST(GdbRequest, ParsesTargetRequests) {
  Request r = parse_request("m7fff0010,40");
  EXPECT_EQ(r.kind, Kind::kReadMemory);
  EXPECT_EQ(r.address, 0x7fff0010u);
  EXPECT_EQ(r.length, 0x40u);

  r = parse_request("Z0,ffffffff81000123,1");
  EXPECT_EQ(r.kind, Kind::kInsertBreakpoint);
  EXPECT_EQ(r.number, 0u);
  EXPECT_EQ(r.address, 0xffffffff81000123u);
  EXPECT_EQ(r.length, 1u);
  r = parse_request("z2,1000,8");
  EXPECT_EQ(r.kind, Kind::kRemoveBreakpoint);
  EXPECT_EQ(r.number, 2u);
  EXPECT_EQ(r.length, 8u);
  // Conditions after ';' are ignored (gdb evaluates them itself).
  EXPECT_EQ(parse_request("Z1,1000,1;X3,220027").kind, Kind::kInsertBreakpoint);

  r = parse_request("p10");
  EXPECT_EQ(r.kind, Kind::kReadRegister);
  EXPECT_EQ(r.number, 16u);

  EXPECT_EQ(parse_request("?").kind, Kind::kStopReason);
  EXPECT_EQ(parse_request("g").kind, Kind::kReadRegisters);
  EXPECT_EQ(parse_request("G0011").kind, Kind::kWriteRegisters);
  EXPECT_EQ(parse_request("P10=00").kind, Kind::kWriteRegister);
  EXPECT_EQ(parse_request("M1000,1:00").kind, Kind::kWriteMemory);
  EXPECT_EQ(parse_request("X1000,0:").kind, Kind::kWriteMemory);
  EXPECT_EQ(parse_request("s").kind, Kind::kStep);
  EXPECT_EQ(parse_request("c").kind, Kind::kContinue);
  EXPECT_EQ(parse_request("C05").kind, Kind::kContinue);
  EXPECT_EQ(parse_request("bs").kind, Kind::kReverseStep);
  EXPECT_EQ(parse_request("bc").kind, Kind::kReverseContinue);
  EXPECT_EQ(parse_request("k").kind, Kind::kKill);
  EXPECT_EQ(parse_request("vKill;1").kind, Kind::kKill);
  EXPECT_EQ(parse_request("D").kind, Kind::kDetach);
  EXPECT_EQ(parse_request("D;1").kind, Kind::kDetach);
}

TEST(GdbRequest, ParsesVCont) {
  EXPECT_EQ(parse_request("vCont;s:1").kind, Kind::kStep);
  EXPECT_EQ(parse_request("vCont;c").kind, Kind::kContinue);
  EXPECT_EQ(parse_request("vCont;s:p1.1;c").kind, Kind::kStep);
  EXPECT_EQ(parse_request("vCont;C05:-1").kind, Kind::kContinue);
  // An action for another thread is skipped; the default applies.
  EXPECT_EQ(parse_request("vCont;s:2;c").kind, Kind::kContinue);
  EXPECT_EQ(parse_request("vCont?").kind, Kind::kVContQuery);
  EXPECT_EQ(parse_request("vCont;r1000,2000:1").kind, Kind::kMalformed);
  EXPECT_EQ(parse_request("vCont;").kind, Kind::kMalformed);
  EXPECT_EQ(parse_request("vCont;s:zz").kind, Kind::kMalformed);
  EXPECT_EQ(parse_request("vCont;s:2").kind, Kind::kMalformed);
}

TEST(GdbRequest, ParsesSessionQueries) {
  EXPECT_EQ(parse_request("qSupported:multiprocess+;swbreak+").kind, Kind::kQuerySupported);
  EXPECT_EQ(parse_request("QStartNoAckMode").kind, Kind::kStartNoAckMode);
  const Request r = parse_request("qXfer:features:read:target.xml:7f,ffb");
  EXPECT_EQ(r.kind, Kind::kReadFeatures);
  EXPECT_EQ(r.annex, "target.xml");
  EXPECT_EQ(r.address, 0x7fu);
  EXPECT_EQ(r.length, 0xffbu);
  EXPECT_EQ(parse_request("qAttached:1").kind, Kind::kQueryAttached);
  EXPECT_EQ(parse_request("qC").kind, Kind::kQueryCurrentThread);
  EXPECT_EQ(parse_request("qfThreadInfo").kind, Kind::kThreadInfoFirst);
  EXPECT_EQ(parse_request("qsThreadInfo").kind, Kind::kThreadInfoNext);
  EXPECT_EQ(parse_request("Hg0").kind, Kind::kSetThread);
  EXPECT_EQ(parse_request("Hc-1").kind, Kind::kSetThread);
  EXPECT_EQ(parse_request("Hgp1.1").kind, Kind::kSetThread);
  EXPECT_EQ(parse_request("T1").kind, Kind::kThreadAlive);
  EXPECT_EQ(parse_request("qTStatus").kind, Kind::kUnknown);
  EXPECT_EQ(parse_request("vFile:open:").kind, Kind::kUnknown);
  EXPECT_EQ(parse_request("").kind, Kind::kUnknown);
}

TEST(GdbRequest, MalformedArgumentsAreReportedNotGuessed) {
  for (const char* body : {"m",
                           "m1000",
                           "m1000,",
                           "mxyz,1",
                           "m1,2,3",
                           "p",
                           "pzz",
                           "p10000",
                           "Z0",
                           "Z0,1000",
                           "Z9,1000,1",
                           "Zq,1,1",
                           "z0,,1",
                           "s1000",
                           "c1000",
                           "C",
                           "Cxx",
                           "?x",
                           "gx",
                           "H",
                           "Hg",
                           "Hgzz",
                           "Tq",
                           "qXfer:features:read:target.xml",
                           "qXfer:features:read:target.xml:0,"}) {
    const Request r = parse_request(body);
    EXPECT_EQ(r.kind, Kind::kMalformed) << body;
    EXPECT_FALSE(r.annex.empty()) << body;
  }
}

TEST(GdbStopReply, Formats) {
  EXPECT_EQ(format_stop_reply({StopReply::Kind::kTrap}), "T05thread:1;");
  EXPECT_EQ(format_stop_reply({StopReply::Kind::kSoftwareBreak}), "T05thread:1;swbreak:;");
  EXPECT_EQ(format_stop_reply({StopReply::Kind::kHardwareBreak}), "T05thread:1;hwbreak:;");
  EXPECT_EQ(format_stop_reply({StopReply::Kind::kWriteWatch, 0xffff8000dead}),
            "T05thread:1;watch:ffff8000dead;");
  EXPECT_EQ(format_stop_reply({StopReply::Kind::kReplayBegin}), "T05thread:1;replaylog:begin;");
  EXPECT_EQ(format_stop_reply({StopReply::Kind::kReplayEnd}), "T05thread:1;replaylog:end;");
  EXPECT_EQ(format_stop_reply({StopReply::Kind::kExited, 0, 3}), "W03");
  EXPECT_EQ(format_stop_reply({StopReply::Kind::kTerminated, 0, 6}), "X06");
}

}  // namespace
