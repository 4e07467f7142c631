// Seeded k-shot sampling of normal reference images (WinCLIP+, section 4.3:
// "a few normal reference images" per class; the paper averages over random
// draws). The draw must be identical on every platform, compiler and standard
// library, and for any number of MPI ranks, so nothing here uses <random>'s
// engines or distributions: the generator (SplitMix64), the bounded-integer
// method (rejection of the biased low range) and the shuffle (partial
// Fisher-Yates) are all spelled out, and the stream is seeded from a stable
// hash (FNV-1a 64) of a canonical string of (class, k, seed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace winclip::data {

// FNV-1a, 64 bit, over the bytes of `text`.
uint64_t fnv1a64(std::string_view text);

// SplitMix64 (Steele, Lea and Flood 2014): a 64-bit counter passed through a
// fixed mixing function; every operation is defined uint64_t arithmetic.
class SplitMix64 {
  public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next();
    // Uniform in [0, bound), bound > 0, without modulo bias: draws below
    // 2^64 mod bound are rejected, so every residue is equally likely.
    uint64_t below(uint64_t bound);

  private:
    uint64_t state_;
};

// The canonical string "winclip-kshot-v1:<len>:<class>:k<k>:seed<seed>"
// whose FNV-1a hash seeds the draw. The class name is length-prefixed so no
// two (class, k, seed) triples share a string.
std::string sampling_key(const std::string& class_name, int k, uint64_t seed);

// k distinct indices into [0, n), in draw order: a partial Fisher-Yates
// shuffle of 0..n-1 driven by SplitMix64(stream_seed). Requires k <= n.
std::vector<size_t> draw_indices(size_t n, size_t k, uint64_t stream_seed);

// Draws k reference files without replacement for (class_name, k, seed) from
// `files`, which are sorted in byte order first (so the caller's order does
// not matter). Returns the drawn paths in draw order. k = 0 gives an empty
// list. DatasetError naming the class, k and the count if k > files.size()
// or k < 0.
std::vector<std::string> sample_references(const std::string& class_name,
                                           std::vector<std::string> files, int k, uint64_t seed);

}  // namespace winclip::data
