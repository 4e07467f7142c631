// SHA-256 (FIPS 180-4), used for content keys: checkpoint weights, image bytes,
// configs. Torch-free and dependency-free so every module can key on content.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace winclip {

// Incremental hashing: update() any number of times, then hex_digest() once.
class Sha256 {
  public:
    Sha256();
    void update(const void* data, size_t size);
    void update(const std::string& text) { update(text.data(), text.size()); }
    // 64 lower-case hex digits. Finalises the hash; a second call or a later
    // update() is a programming error (checked).
    std::string hex_digest();

  private:
    void compress(const uint8_t* block);

    std::array<uint32_t, 8> state_;
    std::array<uint8_t, 64> buffer_{};
    size_t buffered_ = 0;       // bytes waiting in buffer_
    uint64_t total_bytes_ = 0;  // message length so far
    bool finished_ = false;
};

// One-shot digest of a byte range, 64 lower-case hex digits.
std::string sha256_hex(const void* data, size_t size);
inline std::string sha256_hex(const std::string& text) {
    return sha256_hex(text.data(), text.size());
}

}  // namespace winclip
