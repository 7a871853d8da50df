#pragma once
// Shared between the probe's own source files; not part of its interface.
#include "probe/probe.h"

namespace vmm::probe {

// run_probe() with host information already collected (the cache lookup
// needs it first to compute the key).
ProbeResult run_probe_for_host(const HostInfo& host, const ProbeOptions& options);

}  // namespace vmm::probe
