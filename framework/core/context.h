// The context block every result carries: what produced it and where.
#pragma once

#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>

namespace winclip {

// Project version, build type, compiler, git commit (and whether the tree had
// uncommitted changes), host name, UTC time. Library versions are added by the
// modules that link those libraries (see io/hdf5.h, dist/mpi.h, clip/).
nlohmann::json build_context();

// "abc123..." or "unknown" when the source tree is not a git checkout.
std::string git_commit();

// ISO 8601 UTC time, e.g. "2026-12-04T16:40:01Z".
std::string utc_timestamp();

// A memory figure of this process from /proc/self/status, in bytes: "VmHWM"
// (peak resident set) or "VmRSS" (current). 0 where the field is unknown.
int64_t process_memory_bytes(const std::string& field);

// Number of CPU cores this process may run on (its affinity mask), at least 1.
int available_cores();

}  // namespace winclip
