// Reading OpenCLIP state dicts without running code from the file:
//  - torch.save zip archives (archive/data.pkl + archive/data/<key>), parsed by
//    a small pickle reader that knows only the opcodes and the handful of
//    globals torch.save emits for a dict of tensors, and refuses anything else;
//  - safetensors files (8-byte little-endian header length, JSON header, data).
// Like OpenCLIP's loader, a dict under a "state_dict" key is unwrapped and a
// "module." prefix present on every key is removed.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace winclip::clip {

// Key -> tensor in the dtype stored in the file (float16, bfloat16, float32,
// float64; integer and bool tensors are read too), sorted by key.
using StateDict = std::map<std::string, torch::Tensor>;

// Detects the format from the file's first bytes. Throws IoError when the file
// cannot be read and ModelError for a malformed, truncated or unsupported file
// (the legacy non-zip torch.save format, compressed zip entries, a pickle that
// names a global other than the allowed torch/collections ones, ...). Messages
// name the file and the entry or key.
StateDict load_state_dict(const std::string& path);

// Hex SHA-256 over the tensors in key order: for each, the key, a NUL byte, the
// shape as little-endian int64 values, then the values converted to float32
// (little endian, row-major). The same weights stored as .bin or .safetensors,
// in float16 or float32 when exactly representable, hash equal.
std::string state_dict_sha256(const StateDict& state);

}  // namespace winclip::clip
