// Whole-file reads shared by the image decoders, the embedding cache and the
// experiment engine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace winclip::io {

// The whole file as bytes; IoError naming the path if it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// SHA-256 of a file's bytes (lower-case hex), read in 1 MiB blocks so large
// shards and checkpoints never sit in memory whole; IoError naming the path.
std::string file_sha256(const std::string& path);

}  // namespace winclip::io
