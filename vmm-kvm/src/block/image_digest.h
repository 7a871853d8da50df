#pragma once
// A disk base image's identity for snapshots: a snapshot keeps only the
// overlay's sectors, so restoring it on a base image that changed since
// would show the guest a disk it never had.
#include <string>

namespace vmm::block {

// BLAKE2b-256 of the whole file, in hex. Throws librr::SystemError.
std::string image_digest_hex(const std::string& path);

}  // namespace vmm::block
