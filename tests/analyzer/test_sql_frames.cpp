// The frames table on a real recording of the `net` test guest: rr-vmm
// records with its NIC on a unix socket this test serves as the peer; every
// frame the guest received is a row with its Ethernet header parsed.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <vector>

#include "sql/sqlite.h"
#include "test_sql_support.h"

using namespace sql_test;
using analyzer::sql::Database;

namespace {

const std::vector<uint8_t> kGuestMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
const std::vector<uint8_t> kPeerMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr uint16_t kTestEtherType = 0x88b5;  // the net guest's protocol (IEEE local experimental)

std::vector<uint8_t> make_frame(const std::string& payload) {
  std::vector<uint8_t> frame = kGuestMac;
  frame.insert(frame.end(), kPeerMac.begin(), kPeerMac.end());
  frame.push_back(kTestEtherType >> 8);
  frame.push_back(kTestEtherType & 0xff);
  frame.insert(frame.end(), payload.begin(), payload.end());
  frame.resize(std::max<size_t>(frame.size(), 60), 0);
  return frame;
}

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) > 0;
}

// Records the net guest, feeding it `frames` numbered frames and the quit
// frame over a SOCK_SEQPACKET socket; returns rr-vmm's exit status.
int record_net_guest(const fs::path& rec, const fs::path& socket_path, int frames) {
  const int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener, 1) != 0)
    return -1;
  const pid_t child = fork();
  if (child == 0) {
    const int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(null_fd, 2);
    setenv("RR_GUEST_DIR", guest_dir().c_str(), 1);
    const std::string net = "unix:" + socket_path.string();
    execl(rr_vmm().c_str(), "rr-vmm", "record", "--out", rec.c_str(), "--guest", "net",
          "--serial-in", "none", "--net", net.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int connection = -1;
  if (readable(listener, 30'000)) connection = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (connection >= 0) {
    std::vector<uint8_t> reply(65536);
    for (int seq = 0; seq <= frames; ++seq) {
      const std::vector<uint8_t> frame =
          seq < frames ? make_frame("RRNET" + std::string(4, static_cast<char>(seq)))
                       : make_frame("RRQUIT");
      send(connection, frame.data(), frame.size(), MSG_NOSIGNAL);
      // The guest acknowledges each numbered frame; wait (briefly: the test
      // checks what was received, not the replies) before the next. After
      // the quit frame it exits: rr-vmm's exit ends the exchange.
      if (seq < frames && readable(connection, 5'000))
        recv(connection, reply.data(), reply.size(), 0);
    }
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (connection >= 0) close(connection);
  close(listener);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(SqlFrames, ReceivedFramesHaveTheirEthernetHeaderParsed) {
  const std::string why = why_no_guests();
  if (!why.empty()) GTEST_SKIP() << why << ": cannot record the net guest";
  TempDir tmp;
  constexpr int kFrames = 6;
  const fs::path rec = tmp.path() / "net";
  ASSERT_EQ(record_net_guest(rec, tmp.path() / "peer.sock", kFrames), 0);

  const fs::path path = tmp.path() / "net.sqlite";
  const CommandResult r = analyze("export " + rec.string() + " --db " + path.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Database db(path, Database::Mode::kReadOnly);
  auto rows = db.prepare(
      "SELECT f.dst_mac, f.src_mac, f.ethertype, f.ethertype_name, f.length, length(i.data), "
      "i.channel, substr(i.data, 15, 6) FROM frames f JOIN inputs i USING (record_index) "
      "ORDER BY f.landmark, f.async_seq, f.record_index");
  int count = 0;
  while (rows.step()) {
    SCOPED_TRACE(count);
    EXPECT_EQ(rows.column_text(0), "52:54:00:12:34:56");
    EXPECT_EQ(rows.column_text(1), "02:00:00:00:00:01");
    EXPECT_EQ(rows.column_int(2), kTestEtherType);
    EXPECT_EQ(rows.column_type(3), SQLITE_NULL);  // a type the table does not name
    EXPECT_EQ(rows.column_int(4), 60);
    EXPECT_EQ(rows.column_int(5), 60);
    EXPECT_EQ(rows.column_text(6), "net0");
    const auto payload = rows.column_blob(7);
    const std::string tag(payload.begin(), payload.end());
    EXPECT_EQ(tag, count < kFrames ? std::string("RRNET") + static_cast<char>(count) : "RRQUIT");
    ++count;
  }
  EXPECT_EQ(count, kFrames + 1);
  auto status = db.prepare("SELECT replay_status FROM recording");
  ASSERT_TRUE(status.step());
  EXPECT_EQ(status.column_text(0), "faithful");
}
