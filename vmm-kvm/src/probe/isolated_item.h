#pragma once
// Runs one measurement in a forked child process with a hard deadline. A vCPU
// stuck in the kernel, a crash in an emulator path or a hang then costs one
// "unknown" item instead of the whole probe: the parent SIGKILLs the child
// (which also ends a KVM_RUN) and reports why.
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace vmm::probe {

// `measure` returns the item's JSON (it sets no "status"). The result always
// carries "status" ("ok" or "unknown"), "seconds", and "error" when unknown.
nlohmann::json run_isolated(const std::string& item_name,
                            const std::function<nlohmann::json()>& measure,
                            std::chrono::milliseconds timeout);

}  // namespace vmm::probe
