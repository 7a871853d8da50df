// Page-table walks over hand-built tables in a RAM buffer: 4 KiB, 2 MiB and
// 1 GiB pages, unmapped and non-canonical addresses, reads across pages.
#include "memory/address_space.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace analyzer {
namespace {

constexpr uint64_t P = 1, W = 2, U = 4, PS = 0x80;

struct Ram {
  std::vector<uint8_t> bytes = std::vector<uint8_t>(16 << 20);
  void put(uint64_t gpa, uint64_t value) { std::memcpy(bytes.data() + gpa, &value, 8); }
  BufferPhysicalMemory view() const { return BufferPhysicalMemory(bytes); }
};

// PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000, PT at 0x4000.
Ram make_tables() {
  Ram ram;
  ram.put(0x1000 + 0 * 8, 0x2000 | P | W | U);     // PML4[0]
  ram.put(0x2000 + 0 * 8, 0x3000 | P | W | U);     // PDPT[0] -> PD
  ram.put(0x2000 + 1 * 8, 0x0 | P | PS);           // PDPT[1]: 1 GiB page at 0 (kernel only)
  ram.put(0x3000 + 0 * 8, 0x4000 | P | W | U);     // PD[0] -> PT
  ram.put(0x3000 + 1 * 8, 0x600000 | P | PS | W);  // PD[1]: 2 MiB page at 6 MiB
  ram.put(0x4000 + 5 * 8, 0x9000 | P | U);         // PT[5]: 0x5000 -> 0x9000, read-only
  ram.put(0x4000 + 6 * 8, 0xb000 | P | U | W);     // PT[6]: 0x6000 -> 0xb000
  ram.put(0x1000 + 511 * 8, 0x2000 | P | W);       // PML4[511]: kernel half reuses the PDPT
  return ram;
}

TEST(AddressSpace, Walks4KiBPages) {
  Ram ram = make_tables();
  BufferPhysicalMemory memory = ram.view();
  AddressSpace space(memory, 0x1000 | 0x18 /* PWT|PCD ignored */);
  auto t = space.translate(0x5123);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->physical, 0x9123u);
  EXPECT_EQ(t->page_size, 4096u);
  EXPECT_FALSE(t->writable);
  EXPECT_TRUE(t->user);
  EXPECT_FALSE(space.translate(0x7000)) << "PT[7] is not present";
}

TEST(AddressSpace, WalksLargePages) {
  Ram ram = make_tables();
  BufferPhysicalMemory memory = ram.view();
  AddressSpace space(memory, 0x1000);
  auto two_mib = space.translate(0x200000 + 0x1234);
  ASSERT_TRUE(two_mib);
  EXPECT_EQ(two_mib->physical, 0x601234u);
  EXPECT_EQ(two_mib->page_size, 2u << 20);
  EXPECT_FALSE(two_mib->user);
  auto one_gib = space.translate((1ull << 30) + 0x345678);
  ASSERT_TRUE(one_gib);
  EXPECT_EQ(one_gib->physical, 0x345678u);
  EXPECT_EQ(one_gib->page_size, 1u << 30);
  auto kernel = space.translate(0xffff'ff80'0000'5010ull);  // PML4[511] -> same PDPT
  ASSERT_TRUE(kernel);
  EXPECT_EQ(kernel->physical, 0x9010u);
}

TEST(AddressSpace, RejectsNonCanonicalAndTablesOutsideRam) {
  Ram ram = make_tables();
  ram.put(0x3000 + 2 * 8, (64ull << 30) | P);  // PD[2] -> a PT far outside RAM
  BufferPhysicalMemory memory = ram.view();
  AddressSpace space(memory, 0x1000);
  EXPECT_FALSE(space.translate(0x0000'8000'0000'0000ull));
  EXPECT_FALSE(space.translate(0x400000));
}

TEST(AddressSpace, ReadsAcrossPagesAndStopsAtTheFirstHole) {
  Ram ram = make_tables();
  std::memset(ram.bytes.data() + 0x9ff8, 0xaa, 8);
  std::memset(ram.bytes.data() + 0xb000, 0xbb, 8);
  BufferPhysicalMemory memory = ram.view();
  AddressSpace space(memory, 0x1000);
  std::vector<uint8_t> out(16);
  ASSERT_TRUE(space.read_exact(0x5ff8, out));
  EXPECT_EQ(out[0], 0xaa);
  EXPECT_EQ(out[7], 0xaa);
  EXPECT_EQ(out[8], 0xbb);
  EXPECT_EQ(space.read(0x6ff8, out), 8u) << "0x7000 is unmapped";
}

TEST(AddressSpace, IdentityWithoutPaging) {
  Ram ram = make_tables();
  BufferPhysicalMemory memory = ram.view();
  AddressSpace space(memory, 0, /*paging_enabled=*/false);
  EXPECT_EQ(space.translate(0x5123)->physical, 0x5123u);
  EXPECT_FALSE(space.translate(ram.bytes.size()));
}

}  // namespace
}  // namespace analyzer
