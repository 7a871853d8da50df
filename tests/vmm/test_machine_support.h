#pragma once
// Shared helpers for tests that run real KVM guests.
#include <gtest/gtest.h>

#include <string>

#include "kvm/kvm.h"
#include "librr/error.h"

namespace vmm::testing {

// Empty when /dev/kvm works, else the reason (tests skip loudly with it).
inline std::string kvm_unusable_reason() {
  try {
    kvm::System system;
    system.create_vm();
    return {};
  } catch (const librr::Error& e) {
    return e.what();
  }
}

#define RR_SKIP_WITHOUT_KVM()                                             \
  do {                                                                    \
    const std::string reason = ::vmm::testing::kvm_unusable_reason();     \
    if (!reason.empty()) GTEST_SKIP() << "KVM unusable here: " << reason; \
  } while (0)

}  // namespace vmm::testing
