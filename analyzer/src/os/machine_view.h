#pragma once
// What an OS model looks at: guest-physical memory and the vCPU's paging
// state at one position of a recording (from the TimeTraveler, or any other
// source of guest RAM such as a snapshot).
#include <cstdint>

#include "memory/physical_memory.h"

namespace analyzer {

struct MachineView {
  const PhysicalMemory& memory;
  uint64_t cr3 = 0;
  bool paging_enabled = false;  // CR0.PG
};

}  // namespace analyzer
