#include "replay/state_digest.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "librr/crypto.h"
#include "librr/error.h"
#include "librr/host_memory.h"
#include "replay/memory_shadow.h"

namespace vmm {
namespace {

constexpr uint64_t kPageSize = MemoryShadow::kPageSize;

using Xxh3State = std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)>;

Xxh3State new_xxh3_state(const char* what) {
  Xxh3State state(XXH3_createState(), &XXH3_freeState);
  if (!state) throw librr::Error(std::string(what) + ": out of memory for the XXH3 state");
  XXH3_128bits_reset(state.get());
  return state;
}

bool all_zeros(const uint8_t* page) {
  uint64_t any = 0;
  for (uint64_t i = 0; i < kPageSize; i += sizeof(uint64_t)) {
    uint64_t word;
    std::memcpy(&word, page + i, sizeof word);
    any |= word;
  }
  return any == 0;
}

}  // namespace

XXH128_hash_t hash_guest_memory(GuestMemory memory) {
  const auto held = librr::held_pages(memory.host_base(), memory.size());
  if (!held) return XXH3_128bits(memory.host_base(), memory.size());
  static constexpr std::array<uint8_t, kPageSize> kZeroPage{};
  Xxh3State state = new_xxh3_state("hash_guest_memory");
  const uint64_t pages = memory.size() / kPageSize;
  uint64_t run_start = 0;  // first page of the current run of held pages
  for (uint64_t gfn = 0; gfn <= pages; ++gfn) {
    if (gfn < pages && (*held)[gfn]) continue;
    if (gfn > run_start)
      XXH3_128bits_update(state.get(), memory.host_base() + run_start * kPageSize,
                          (gfn - run_start) * kPageSize);
    if (gfn < pages) XXH3_128bits_update(state.get(), kZeroPage.data(), kZeroPage.size());
    run_start = gfn + 1;
  }
  return XXH3_128bits_digest(state.get());
}

XXH128_hash_t hash_nonzero_pages(GuestMemory memory) {
  const auto held = librr::held_pages(memory.host_base(), memory.size());
  Xxh3State state = new_xxh3_state("hash_nonzero_pages");
  const uint64_t pages = memory.size() / kPageSize;
  for (uint64_t gfn = 0; gfn < pages; ++gfn) {
    if (held && !(*held)[gfn]) continue;
    const uint8_t* page = memory.host_base() + gfn * kPageSize;
    if (all_zeros(page)) continue;
    const uint64_t gfn_le = gfn;  // x86 hosts only: already little-endian
    XXH3_128bits_update(state.get(), &gfn_le, sizeof gfn_le);
    XXH3_128bits_update(state.get(), page, kPageSize);
  }
  return XXH3_128bits_digest(state.get());
}

librr::StateDigest compute_state_digest(Machine& machine, const librr::Position& pos,
                                        MemoryDigestKind memory_digest) {
  const kvm_regs regs = machine.vcpu().get_regs();
  const kvm_sregs sregs = machine.vcpu().get_sregs();
  librr::Hasher registers;
  registers.update_pod(regs);
  registers.update_pod(sregs.cr0).update_pod(sregs.cr3).update_pod(sregs.cr4);
  registers.update_pod(sregs.efer).update_pod(sregs.cs.selector);
  librr::StateDigest digest;
  digest.pos = pos;
  digest.registers = registers.finish();
  const GuestMemory memory = machine.memory();
  const XXH128_hash_t ram = memory_digest == MemoryDigestKind::nonzero_pages
                                ? hash_nonzero_pages(memory)
                                : hash_guest_memory(memory);
  std::memcpy(digest.memory.data(), &ram.low64, 8);
  std::memcpy(digest.memory.data() + 8, &ram.high64, 8);
  return digest;
}

std::string describe_digest_difference(const librr::StateDigest& expected,
                                       const librr::StateDigest& actual) {
  std::string what;
  if (expected.registers != actual.registers) what = "registers";
  if (expected.memory != actual.memory) what += what.empty() ? "memory" : " and memory";
  return what;
}

}  // namespace vmm
