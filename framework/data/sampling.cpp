#include "data/sampling.h"

#include <algorithm>

#include "core/error.h"

namespace winclip::data {

uint64_t fnv1a64(std::string_view text) {
    uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
    for (const char c : text) {
        hash ^= static_cast<uint8_t>(c);
        hash *= 0x100000001b3ULL;  // FNV 64 prime
    }
    return hash;
}

uint64_t SplitMix64::next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
    WINCLIP_CHECK(bound > 0);
    // 2^64 mod bound, computed in 64 bits as (2^64 - bound) mod bound. Draws
    // under it would make the low residues one count more likely.
    const uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        const uint64_t r = next();
        if (r >= threshold) return r % bound;
    }
}

std::string sampling_key(const std::string& class_name, int k, uint64_t seed) {
    return "winclip-kshot-v1:" + std::to_string(class_name.size()) + ":" + class_name + ":k" +
           std::to_string(k) + ":seed" + std::to_string(seed);
}

std::vector<size_t> draw_indices(size_t n, size_t k, uint64_t stream_seed) {
    WINCLIP_CHECK(k <= n);
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    SplitMix64 rng(stream_seed);
    // Partial Fisher-Yates: position i takes a uniform pick from the rest.
    for (size_t i = 0; i < k; ++i) {
        const size_t j = i + static_cast<size_t>(rng.below(n - i));
        std::swap(order[i], order[j]);
    }
    order.resize(k);
    return order;
}

std::vector<std::string> sample_references(const std::string& class_name,
                                           std::vector<std::string> files, int k, uint64_t seed) {
    if (k < 0) {
        throw DatasetError("k-shot count for class '" + class_name + "' must be >= 0, got " +
                           std::to_string(k));
    }
    if (static_cast<size_t>(k) > files.size()) {
        throw DatasetError("class '" + class_name + "' has " + std::to_string(files.size()) +
                           " normal training images, fewer than k = " + std::to_string(k));
    }
    std::sort(files.begin(), files.end());  // byte order, as the datasets list them
    const uint64_t stream_seed = fnv1a64(sampling_key(class_name, k, seed));
    std::vector<std::string> drawn;
    for (const size_t i : draw_indices(files.size(), static_cast<size_t>(k), stream_seed)) {
        drawn.push_back(files[i]);
    }
    return drawn;
}

}  // namespace winclip::data
