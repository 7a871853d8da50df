// The async_positions table names each stop's memory kind (schemas/sql/
// async_positions.md): a digest, a delta (pages and their bytes), a pages
// digest (log format 2.3: the pages replay hashes, none stored) or a kernel
// return (log format 2.8: no state, in user mode).
#include "librr/log.h"
#include "librr/page_delta.h"
#include "librr/recording.h"
#include "librr/snapshot.h"
#include "test_sql_support.h"

using namespace sql_test;

namespace {

// A recording written with librr (no KVM needed) holding one stop of each
// memory kind.
fs::path make_recording_with_every_memory_kind(const fs::path& where) {
  librr::RecordingDir dir = create_synthetic_recording(where);
  std::vector<uint8_t> shadow(4096, 0), current(4096, 0);
  current[12] = 7;
  const librr::PageChange change{3, shadow, current};
  librr::LogWriter log(dir.log_path());
  const std::vector<uint8_t> vcpu(32, 1);
  log.append(librr::AsyncPosition{{1, 1, 0}, 1, vcpu, librr::MemoryDigest{}});
  log.append(librr::AsyncPosition{{2, 1, 0}, 1, vcpu, librr::make_memory_delta(2, {&change, 1})});
  log.append(librr::AsyncPosition{{3, 1, 0}, 1, vcpu, librr::PagesDigest{0x1234, {3, 8, 21}}});
  log.append(librr::AsyncPosition{
      {4, 1, 0}, 1, {}, librr::KernelReturn{0x1010f0, 99}, librr::CodeArrivals{{0x101000}, 2}});
  log.append(librr::EndOfRecording{{5, 0, 0}, "exit port", 0});
  log.close();
  return where;
}

}  // namespace

TEST(SqlAsyncMemory, EveryMemoryKindHasItsRow) {
  TempDir tmp;
  const fs::path rec = make_recording_with_every_memory_kind(tmp.path() / "rec");
  const CommandResult r =
      analyze("query " + rec.string() +
              " 'SELECT landmark, memory_kind, delta_reset_landmark, delta_pages, delta_bytes > 0, "
              "cpl FROM async_positions ORDER BY record_index' --format csv --no-replay");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "landmark,memory_kind,delta_reset_landmark,delta_pages,delta_bytes > 0,cpl\r\n"
            "1,digest,,,,\r\n"
            "2,delta,2,1,1,\r\n"
            "3,pages-digest,,3,,\r\n"
            "4,kernel-return,,,,3\r\n");
}
