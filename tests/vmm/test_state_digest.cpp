// The memory part of state digests under each replay rules version
// (replay/replay_rules.h): version 1 must keep hashing every byte, so that
// recordings made under it still replay; versions 2 and 3 must tell apart
// exactly the memories that differ, whether or not the host holds their zero
// pages. And which rules each manifest value names.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <xxhash.h>

#include <cstring>
#include <memory>

#include "librr/manifest.h"
#include "replay/replay_rules.h"
#include "replay/state_digest.h"

namespace vmm {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPages = 64;

// Anonymous memory like guest RAM: pages the test never touches are not held.
class AnonymousMemory {
 public:
  AnonymousMemory() {
    void* p = ::mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<uint8_t*>(p);
  }
  ~AnonymousMemory() { ::munmap(base_, kPages * kPage); }
  AnonymousMemory(const AnonymousMemory&) = delete;
  AnonymousMemory& operator=(const AnonymousMemory&) = delete;
  GuestMemory memory() const { return GuestMemory(base_, kPages * kPage); }
  uint8_t* page(uint64_t gfn) { return base_ + gfn * kPage; }

 private:
  uint8_t* base_ = nullptr;
};

bool operator==(const XXH128_hash_t& a, const XXH128_hash_t& b) {
  return XXH128_isEqual(a, b) != 0;
}

TEST(StateDigest, RulesOneHashesEveryByteOfMemory) {
  AnonymousMemory ram;
  std::memcpy(ram.page(3) + 100, "guest", 5);
  ram.page(40)[4095] = 0x7f;
  const GuestMemory memory = ram.memory();
  EXPECT_TRUE(hash_guest_memory(memory) == XXH3_128bits(memory.host_base(), memory.size()));
}

TEST(StateDigest, RulesTwoIgnoreWhetherZeroPagesAreHeld) {
  AnonymousMemory a, b;
  std::memcpy(a.page(5), "kernel", 6);
  std::memcpy(b.page(5), "kernel", 6);
  // b holds pages that read as zeros in a without being held there.
  std::memset(b.page(9), 0, kPage);
  b.page(20)[17] = 1;
  b.page(20)[17] = 0;
  EXPECT_TRUE(hash_nonzero_pages(a.memory()) == hash_nonzero_pages(b.memory()));
}

TEST(StateDigest, RulesTwoTellApartAByteAndAPlace) {
  AnonymousMemory a, b, c;
  a.page(7)[12] = 0x42;
  b.page(7)[12] = 0x43;  // another value
  c.page(8)[12] = 0x42;  // the same page content at another page frame
  const XXH128_hash_t ha = hash_nonzero_pages(a.memory());
  EXPECT_FALSE(ha == hash_nonzero_pages(b.memory()));
  EXPECT_FALSE(ha == hash_nonzero_pages(c.memory()));
  AnonymousMemory empty;
  EXPECT_FALSE(ha == hash_nonzero_pages(empty.memory()));
}

TEST(ReplayRules, ManifestVersionsMapToDigestKinds) {
  librr::ToolVersions tools;
  tools.replay_rules_version = "";  // manifests from before the field
  ASSERT_TRUE(ReplayRules::from_manifest(tools));
  EXPECT_EQ(ReplayRules::from_manifest(tools)->memory_digest, MemoryDigestKind::every_byte);
  tools.replay_rules_version = "1";
  EXPECT_EQ(ReplayRules::from_manifest(tools)->memory_digest, MemoryDigestKind::every_byte);
  EXPECT_FALSE(ReplayRules::from_manifest(tools)->stop_clock_from_deadline);
  tools.replay_rules_version = "2";
  EXPECT_EQ(ReplayRules::from_manifest(tools)->memory_digest, MemoryDigestKind::nonzero_pages);
  EXPECT_FALSE(ReplayRules::from_manifest(tools)->stop_clock_from_deadline);
  tools.replay_rules_version = ReplayRules::current().manifest_value();
  EXPECT_EQ(ReplayRules::from_manifest(tools)->version, 3u);
  EXPECT_EQ(ReplayRules::from_manifest(tools)->memory_digest, MemoryDigestKind::nonzero_pages);
  EXPECT_TRUE(ReplayRules::from_manifest(tools)->stop_clock_from_deadline);
  tools.replay_rules_version = "4";
  EXPECT_FALSE(ReplayRules::from_manifest(tools));
  tools.replay_rules_version = "two";
  EXPECT_FALSE(ReplayRules::from_manifest(tools));
}

}  // namespace
}  // namespace vmm
