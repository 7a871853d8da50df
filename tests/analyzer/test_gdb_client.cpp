// The protocol layer against the real gdb: gdb must accept the target
// description, read the register file in our layout and read memory. A
// small in-test responder answers target requests from fixed register and
// memory contents, so this checks the protocol, not the replay (that is
// test_gdb_replay.cpp).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>
#include <thread>

#include "gdb/gdb_connection.h"
#include "gdb/gdb_listener.h"
#include "gdb/gdb_registers.h"

namespace {

using namespace analyzer::gdb;

bool have_gdb() { return std::system("gdb --version > /dev/null 2>&1") == 0; }

std::string run_and_capture(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  pclose(pipe);
  return output;
}

constexpr uint64_t kMemoryBase = 0x200000;

void respond(GdbServerConnection& connection, const MachineRegisters& machine,
             const std::vector<uint8_t>& memory, std::vector<std::string>& seen) {
  while (auto request = connection.next_request()) {
    switch (request->kind) {
      case Request::Kind::kStopReason:
        connection.send_stop_reply({StopReply::Kind::kTrap});
        break;
      case Request::Kind::kReadRegisters:
        connection.send_reply(to_hex(all_register_bytes(machine)));
        break;
      case Request::Kind::kReadRegister: {
        const auto bytes = register_bytes(machine, static_cast<int>(request->number));
        bytes ? connection.send_reply(to_hex(*bytes)) : connection.send_error(0x16);
        break;
      }
      case Request::Kind::kReadMemory: {
        if (request->address < kMemoryBase || request->address >= kMemoryBase + memory.size()) {
          connection.send_error(0x0e);
          break;
        }
        const uint64_t offset = request->address - kMemoryBase;
        const uint64_t length = std::min<uint64_t>(request->length, memory.size() - offset);
        connection.send_reply(to_hex({memory.data() + offset, length}));
        break;
      }
      case Request::Kind::kWriteRegister:
      case Request::Kind::kWriteRegisters:
        seen.push_back("write-register");
        connection.send_error(0x01);
        break;
      case Request::Kind::kKill:
        seen.push_back("kill");
        return;
      case Request::Kind::kDetach:
        seen.push_back("detach");
        connection.send_ok();
        return;
      default:
        connection.send_reply("");
        break;
    }
  }
}

TEST(GdbClient, RealGdbReadsRegistersAndMemoryThroughOurTargetDescription) {
  if (!have_gdb()) GTEST_SKIP() << "gdb is not installed (apt-get install gdb)";
  MachineRegisters machine;
  machine.regs.rip = 0x200010;
  machine.regs.rax = 0x1122334455667788;
  machine.regs.rsp = 0x7ffff000;
  machine.regs.rflags = 0x246;  // PF ZF IF
  machine.sregs.cs.selector = 0x10;
  machine.sregs.cr3 = 0x9000;
  machine.sregs.cr0 = 0x80050033;
  machine.sregs.fs.base = 0xfeedf00d;
  machine.fpu.mxcsr = 0x1f80;
  machine.fpu.xmm[3][0] = 0x2a;
  std::vector<uint8_t> memory(256);
  for (size_t i = 0; i < memory.size(); ++i) memory[i] = static_cast<uint8_t>(i ^ 0x5a);
  memory[0x10] = 0x90;  // nop at rip
  memory[0x11] = 0xc3;  // ret

  GdbListener listener(0);
  std::vector<std::string> seen;
  std::thread server([&] {
    auto socket = listener.accept_one({});
    ASSERT_TRUE(socket.has_value());
    GdbServerConnection connection(std::move(*socket), target_description());
    respond(connection, machine, memory, seen);
  });
  const std::string output = run_and_capture(fmt::format(
      "timeout 60 gdb -nx -batch -ex 'set pagination off' -ex 'target remote :{}' "
      "-ex 'info registers rip rax rsp eflags cs cr3 cr0 fs_base' -ex 'p/x $xmm3.v16_int8[0]' "
      "-ex 'p/x $mxcsr' -ex 'x/4xb 0x200000' -ex 'x/i $pc' -ex 'set $rax = 1' -ex 'detach'",
      listener.port()));
  server.join();
  SCOPED_TRACE(output);
  EXPECT_NE(output.find("0x200010"), std::string::npos);
  EXPECT_NE(output.find("0x1122334455667788"), std::string::npos);
  EXPECT_NE(output.find("[ PF ZF IF ]"), std::string::npos);
  EXPECT_NE(output.find("cr3            0x9000"), std::string::npos);
  EXPECT_NE(output.find("0x80050033"), std::string::npos);
  EXPECT_NE(output.find("fs_base        0xfeedf00d"), std::string::npos);
  EXPECT_NE(output.find("= 0x2a"), std::string::npos);
  EXPECT_NE(output.find("= 0x1f80"), std::string::npos);
  EXPECT_NE(output.find("0x5a\t0x5b\t0x58\t0x59"), std::string::npos);
  EXPECT_NE(output.find("nop"), std::string::npos);
  // gdb says so when it ignores a target description it cannot use.
  EXPECT_EQ(output.find("rejected target-supplied description"), std::string::npos);
  EXPECT_NE(output.find("Could not write register \"rax\"; remote failure reply 'E01'"),
            std::string::npos);
  EXPECT_EQ(seen, (std::vector<std::string>{"write-register", "detach"}));
}

}  // namespace
