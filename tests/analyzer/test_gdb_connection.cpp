// GdbServerConnection over a socketpair: the test plays gdb on one end,
// writing raw bytes and reading what the server sends back.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gdb/gdb_connection.h"
#include "gdb/gdb_registers.h"

namespace {

using namespace analyzer::gdb;
using Kind = Request::Kind;

class FakeGdb {
 public:
  FakeGdb() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
    server_end_ = UniqueFd(fds[0]);
    gdb_end_ = UniqueFd(fds[1]);
  }
  UniqueFd take_server_end() { return std::move(server_end_); }

  void send_raw(std::string_view bytes) {
    ASSERT_EQ(::write(gdb_end_.get(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }
  void send_packet(std::string_view body) { send_raw(frame_packet(body)); }
  // Everything the server has sent so far (waits briefly for the first byte).
  std::string received() {
    std::string out;
    pollfd p{gdb_end_.get(), POLLIN, 0};
    int timeout_ms = 2000;
    while (::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN)) {
      char buffer[65536];
      const ssize_t n = ::read(gdb_end_.get(), buffer, sizeof buffer);
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
      timeout_ms = 50;
    }
    return out;
  }
  void hang_up() { gdb_end_.reset(); }

 private:
  UniqueFd server_end_, gdb_end_;
};

TEST(GdbConnection, AcksAndAnswersSessionQueriesItself) {
  FakeGdb gdb;
  GdbServerConnection connection(gdb.take_server_end(), "<target/>");
  gdb.send_packet("qSupported:multiprocess+;swbreak+;hwbreak+");
  gdb.send_packet("qC");
  gdb.send_packet("g");
  const auto request = connection.next_request();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->kind, Kind::kReadRegisters);
  const std::string expected =
      "+" + frame_packet(supported_features()) + "+" + frame_packet("QC1") + "+";
  EXPECT_EQ(gdb.received(), expected);
  EXPECT_NE(supported_features().find("ReverseStep+"), std::string::npos);
  EXPECT_NE(supported_features().find("ReverseContinue+"), std::string::npos);
  EXPECT_NE(supported_features().find("PacketSize=4000"), std::string::npos);
}

TEST(GdbConnection, NoAckModeStopsAcknowledgements) {
  FakeGdb gdb;
  GdbServerConnection connection(gdb.take_server_end(), "<target/>");
  gdb.send_packet("QStartNoAckMode");
  gdb.send_raw("+");  // gdb acknowledges the OK, as the manual says
  gdb.send_packet("qfThreadInfo");
  gdb.send_packet("qsThreadInfo");
  gdb.send_packet("?");
  const auto request = connection.next_request();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->kind, Kind::kStopReason);
  EXPECT_TRUE(connection.no_ack_mode());
  EXPECT_EQ(gdb.received(), "+" + frame_packet("OK") + frame_packet("m1") + frame_packet("l"));
}

TEST(GdbConnection, BadChecksumIsNackedAndNackResendsTheLastReply) {
  FakeGdb gdb;
  GdbServerConnection connection(gdb.take_server_end(), "<target/>");
  gdb.send_raw("$qC#00");  // wrong checksum
  gdb.send_packet("qAttached");
  gdb.send_raw("-");  // "please resend": the server repeats its last reply
  gdb.send_packet("k");
  const auto request = connection.next_request();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->kind, Kind::kKill);
  EXPECT_EQ(gdb.received(), "-+" + frame_packet("1") + frame_packet("1") + "+");
}

TEST(GdbConnection, MalformedAndUnknownPacketsGetErrorAndEmptyReplies) {
  FakeGdb gdb;
  GdbServerConnection connection(gdb.take_server_end(), "<target/>");
  gdb.send_packet("mnothex,4");
  gdb.send_packet("qTStatus");
  gdb.send_raw("$a}#" + fmt::format("{:02x}", checksum("a}")));  // ends inside an escape
  gdb.send_raw("$" + std::string(kMaxPacketBody + 1, 'm') + "#00");
  gdb.send_raw(std::string("\x03garbage\x7f", 9));
  gdb.send_packet("D");
  const auto request = connection.next_request();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->kind, Kind::kDetach);
  EXPECT_EQ(gdb.received(), "+" + frame_packet("E01") + "+" + frame_packet("") + "+" +
                                frame_packet("E01") + "+" + frame_packet("E01") + "+");
}

TEST(GdbConnection, ServesTheTargetDescriptionInPieces) {
  FakeGdb gdb;
  const std::string& xml = target_description();
  GdbServerConnection connection(gdb.take_server_end(), xml);
  gdb.send_packet("QStartNoAckMode");
  std::string assembled;
  for (uint64_t offset = 0;;) {
    gdb.send_packet(fmt::format("qXfer:features:read:target.xml:{:x},{:x}", offset, 1000));
    gdb.send_packet("?");  // makes next_request return after each chunk
    ASSERT_TRUE(connection.next_request().has_value());
    std::string reply = gdb.received();
    if (offset == 0) reply = reply.substr(std::string("+$OK#9a").size());
    const auto items = [&] {
      PacketReader reader;
      reader.feed({reinterpret_cast<const uint8_t*>(reply.data()), reply.size()});
      std::vector<StreamItem> out;
      while (auto item = reader.next()) out.push_back(*item);
      return out;
    }();
    ASSERT_EQ(items.size(), 1u);
    ASSERT_EQ(items[0].kind, StreamItem::Kind::kPacket);
    const std::string& body = items[0].body;
    ASSERT_TRUE(body[0] == 'm' || body[0] == 'l') << body;
    assembled += body.substr(1);
    offset += body.size() - 1;
    if (body[0] == 'l') break;
    ASSERT_EQ(body.size(), 1001u);
  }
  EXPECT_EQ(assembled, xml);
  gdb.send_packet("qXfer:features:read:other.xml:0,100");
  gdb.send_packet("k");
  ASSERT_TRUE(connection.next_request().has_value());
  EXPECT_EQ(gdb.received(), frame_packet("E00"));
}

TEST(GdbConnection, HangUpEndsTheSession) {
  FakeGdb gdb;
  GdbServerConnection connection(gdb.take_server_end(), "<target/>");
  gdb.send_packet("qC");
  gdb.hang_up();
  EXPECT_FALSE(connection.next_request().has_value());
  EXPECT_FALSE(connection.connected());
  connection.send_reply("OK");  // no SIGPIPE, no exception
}

TEST(GdbConnection, AStopRequestEndsTheSessionBeforeBlocking) {
  // SIGINT may arrive while a replay request runs, when no read is there to
  // be interrupted: the next wait for gdb must not block.
  FakeGdb gdb;
  bool stop = false;
  GdbServerConnection connection(gdb.take_server_end(), "<target/>", [&] { return stop; });
  gdb.send_packet("g");
  ASSERT_TRUE(connection.next_request().has_value());
  stop = true;
  EXPECT_FALSE(connection.next_request().has_value());
}

TEST(GdbConnection, AnInterruptSentBeforeTheResumePacketIsKeptForIt) {
  FakeGdb gdb;
  GdbServerConnection connection(gdb.take_server_end(), "<target/>");
  // Before any stop reply (gdb's interrupt-on-connect): nothing ran yet.
  gdb.send_raw("\x03");
  gdb.send_packet("?");
  ASSERT_EQ(connection.next_request()->kind, Kind::kStopReason);
  EXPECT_FALSE(connection.take_interrupt_before_resume());
  connection.send_stop_reply({StopReply::Kind::kTrap});
  // Right after a stop reply, before gdb's next packet: it crossed the reply.
  gdb.send_raw("\x03");
  gdb.send_packet("g");
  ASSERT_EQ(connection.next_request()->kind, Kind::kReadRegisters);
  EXPECT_FALSE(connection.take_interrupt_before_resume());
  // After gdb went on talking to the stopped target: gdb's Ctrl-C as a
  // continue starts, sent ahead of the continue packet.
  gdb.send_packet("Z2,101060,8");
  gdb.send_raw("\x03");
  gdb.send_packet("vCont;c");
  ASSERT_EQ(connection.next_request()->kind, Kind::kInsertBreakpoint);
  ASSERT_EQ(connection.next_request()->kind, Kind::kContinue);
  EXPECT_TRUE(connection.take_interrupt_before_resume());
  EXPECT_FALSE(connection.take_interrupt_before_resume()) << "taken once";
}

TEST(GdbConnection, ARunStopsWhenGdbHangsUpOrTheSessionMustEnd) {
  FakeGdb gdb;
  bool stop = false;
  GdbServerConnection connection(gdb.take_server_end(), "<target/>", [&] { return stop; });
  EXPECT_FALSE(connection.interrupt_requested());
  gdb.send_raw("\x03");
  EXPECT_TRUE(connection.interrupt_requested());
  EXPECT_FALSE(connection.interrupt_requested()) << "one interrupt stops one run";
  stop = true;  // the server's own SIGINT/SIGTERM
  EXPECT_TRUE(connection.interrupt_requested());
  stop = false;
  gdb.hang_up();  // nobody waits for the rest of the run
  EXPECT_TRUE(connection.interrupt_requested());
  EXPECT_FALSE(connection.next_request().has_value());
}

TEST(GdbRegisters, TargetDescriptionNamesWhatGdbsAmd64CodeRequires) {
  const std::string& xml = target_description();
  EXPECT_NE(xml.find("<architecture>i386:x86-64</architecture>"), std::string::npos);
  for (const char* feature :
       {"org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.segments"})
    EXPECT_NE(xml.find(feature), std::string::npos) << feature;
  for (int n = 0; n < kRegisterCount; ++n)
    EXPECT_NE(xml.find(fmt::format("regnum=\"{}\"", n)), std::string::npos) << n;
  EXPECT_EQ(xml.find(fmt::format("regnum=\"{}\"", kRegisterCount)), std::string::npos);
}

TEST(GdbRegisters, LayoutFollowsTheDescription) {
  MachineRegisters m;
  m.regs.rax = 0x1122334455667788;
  m.regs.r15 = 0xf15;
  m.regs.rip = 0xffffffff81000000;
  m.regs.rflags = 0x246;
  m.sregs.cs.selector = 0x10;
  m.sregs.gs.selector = 0x2b;
  m.sregs.fs.base = 0xf5ba5e;
  m.sregs.cr3 = 0x1000;
  m.sregs.efer = 0xd01;
  m.fpu.mxcsr = 0x1f80;
  m.fpu.xmm[15][0] = 0xab;
  const std::vector<uint8_t> all = all_register_bytes(m);
  // 16 GPRs + rip (8 each), eflags + 6 selectors (4), 8 x 10-byte st, 8 x87
  // control (4), 16 xmm (16), mxcsr (4), fs/gs base (8), 6 system (8).
  EXPECT_EQ(all.size(), 17u * 8 + 7 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4 + 2 * 8 + 6 * 8);
  EXPECT_EQ(register_bytes(m, 0),
            (std::vector<uint8_t>{0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}));
  EXPECT_EQ(all[15 * 8], 0x15);
  EXPECT_EQ(register_bytes(m, 16)->at(7), 0xff);  // rip
  EXPECT_EQ(register_bytes(m, 17), (std::vector<uint8_t>{0x46, 0x02, 0, 0}));
  EXPECT_EQ(register_bytes(m, 18)->at(0), 0x10);  // cs
  EXPECT_EQ(register_bytes(m, 23)->at(0), 0x2b);  // gs
  EXPECT_EQ(register_bytes(m, 55)->at(0), 0xab);  // xmm15
  EXPECT_EQ(register_bytes(m, 56)->at(1), 0x1f);  // mxcsr
  EXPECT_EQ(register_bytes(m, 57)->at(0), 0x5e);  // fs_base
  EXPECT_EQ(register_bytes(m, 61)->at(1), 0x10);  // cr3
  EXPECT_EQ(register_bytes(m, 64)->at(0), 0x01);  // efer
  EXPECT_FALSE(register_bytes(m, kRegisterCount).has_value());
  EXPECT_FALSE(register_bytes(m, -1).has_value());
}

TEST(GdbRegisters, FullTagWordFromTheAbridgedOne) {
  kvm_fpu fpu{};
  EXPECT_EQ(full_x87_tag_word(fpu), 0xffff);  // all empty
  // Two values pushed: TOP = 6; ST(0) = 1.0 (valid), ST(1) = +0 (zero).
  fpu.fsw = 6 << 11;
  fpu.ftwx = 0xc0;  // physical registers 6 and 7 in use
  const uint64_t one_mantissa = 1ull << 63;
  std::memcpy(fpu.fpr[0], &one_mantissa, 8);
  const uint16_t one_exponent = 0x3fff;
  std::memcpy(fpu.fpr[0] + 8, &one_exponent, 2);
  // physical 6 = ST(0) valid (00), physical 7 = ST(1) zero (01), rest empty.
  EXPECT_EQ(full_x87_tag_word(fpu), 0x4fff);
}

}  // namespace
