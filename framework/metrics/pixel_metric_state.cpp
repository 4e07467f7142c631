#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "core/error.h"
#include "metrics/bytes.h"
#include "metrics/metrics.h"
#include "metrics/regions.h"
#include "metrics/sweep.h"

namespace winclip::metrics {

namespace {

constexpr char kPixelMagic[9] = "WCPXST01";
constexpr char kClassMagic[9] = "WCCLST01";

uint32_t key_of(uint32_t key) { return key; }
uint32_t key_of(uint64_t entry) { return static_cast<uint32_t>(entry >> 32); }

// Stable LSD radix sort by the 32-bit key, one byte per pass, using `buffer`
// as scratch; passes in which every element shares the digit are skipped (so
// a narrow key range costs one or two passes). Megapixel runs sort several
// times faster than with comparisons.
template <typename T>
void radix_sort_by_key(std::vector<T>& values, std::vector<T>& buffer) {
    if (values.size() < 2) return;
    // All four digit histograms in one pass over the data.
    std::array<std::array<size_t, 256>, 4> counts{};
    for (const T& v : values) {
        const uint32_t key = key_of(v);
        ++counts[0][key & 0xFF];
        ++counts[1][(key >> 8) & 0xFF];
        ++counts[2][(key >> 16) & 0xFF];
        ++counts[3][key >> 24];
    }
    buffer.resize(values.size());
    for (int digit = 0; digit < 4; ++digit) {
        std::array<size_t, 256>& offsets = counts[digit];
        bool single_bucket = false;
        size_t total = 0;
        for (size_t& c : offsets) {
            if (c == values.size()) single_bucket = true;
            const size_t count = c;
            c = total;
            total += count;
        }
        if (single_bucket) continue;
        const int shift = 8 * digit;
        for (const T& v : values) buffer[offsets[(key_of(v) >> shift) & 0xFF]++] = v;
        values.swap(buffer);
    }
}

template <typename T>
void radix_sort_by_key(std::vector<T>& values) {
    std::vector<T> buffer;
    radix_sort_by_key(values, buffer);
}

std::string describe_value(float v) {
    if (std::isnan(v)) return "NaN";
    return v > 0 ? "+inf" : "-inf";
}

}  // namespace

uint32_t score_key(float score) {
    if (score == 0.0f) score = 0.0f;  // -0.0 and +0.0 are one threshold
    uint32_t bits;
    std::memcpy(&bits, &score, sizeof(bits));
    // Ascending unsigned order of `ascending` equals ascending float order;
    // the complement turns it into descending score order.
    const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ~ascending;
}

float key_score(uint32_t key) {
    const uint32_t ascending = ~key;
    const uint32_t bits = (ascending & 0x80000000u) ? (ascending & 0x7FFFFFFFu) : ~ascending;
    float score;
    std::memcpy(&score, &bits, sizeof(score));
    return score;
}

void PixelMetricState::add_image(const std::string& name, const uint8_t* mask, int mask_height,
                                 int mask_width, const float* map, int map_height,
                                 int map_width) {
    if (mask_height != map_height || mask_width != map_width) {
        throw DatasetError("anomaly map of image '" + name + "' is " + std::to_string(map_height) +
                           " x " + std::to_string(map_width) + " but its mask is " +
                           std::to_string(mask_height) + " x " + std::to_string(mask_width) +
                           " (height x width); resize the map to the mask before scoring");
    }
    if (map_height <= 0 || map_width <= 0) {
        throw DatasetError("anomaly map of image '" + name + "' has an empty size " +
                           std::to_string(map_height) + " x " + std::to_string(map_width));
    }
    WINCLIP_CHECK(map != nullptr);
    const int height = map_height;
    const int width = map_width;
    const size_t n = static_cast<size_t>(height) * static_cast<size_t>(width);
    if (n > 0xFFFFFFFFu) {
        throw DatasetError("image '" + name + "' has more than 2^32 pixels");
    }
    for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(map[i])) {
            throw DatasetError("anomaly map of image '" + name + "' holds " +
                               describe_value(map[i]) + " at row " + std::to_string(i / width) +
                               ", column " + std::to_string(i % width) +
                               "; scores must be finite");
        }
    }

    // Regions (8-connected, MVTec AD's PRO), then the image as two sorted runs.
    RegionLabels regions = label_regions(mask, height, width);
    ImageRuns runs;
    runs.name = name;
    runs.height = static_cast<uint32_t>(height);
    runs.width = static_cast<uint32_t>(width);
    size_t anomalous = 0;
    for (uint32_t s : regions.sizes) anomalous += s;
    runs.normal_keys.reserve(n - anomalous);
    runs.anomalous_entries.reserve(anomalous);
    for (size_t i = 0; i < n; ++i) {
        const uint32_t key = score_key(map[i]);
        const int32_t region = regions.labels[i];
        if (region < 0) {
            runs.normal_keys.push_back(key);
        } else {
            runs.anomalous_entries.push_back((uint64_t{key} << 32) | static_cast<uint32_t>(region));
        }
    }
    regions.labels = std::vector<int32_t>();  // release before sorting
    runs.region_sizes = std::move(regions.sizes);
    radix_sort_by_key(runs.normal_keys);
    radix_sort_by_key(runs.anomalous_entries);
    images_.push_back(std::move(runs));
}

void PixelMetricState::add_image(const std::string& name, const uint8_t* mask, const float* map,
                                 int height, int width) {
    add_image(name, mask, height, width, map, height, width);
}

void PixelMetricState::add_image(const std::string& name, const Array<uint8_t>& mask,
                                 const FloatArray& map) {
    if (mask.shape.size() != 2 || map.shape.size() != 2) {
        throw DatasetError("image '" + name + "': mask " + shape_string(mask.shape) + " and map " +
                           shape_string(map.shape) + " must both be [height, width]");
    }
    WINCLIP_CHECK(static_cast<int64_t>(mask.values.size()) == mask.numel());
    WINCLIP_CHECK(static_cast<int64_t>(map.values.size()) == map.numel());
    add_image(name, mask.data(), static_cast<int>(mask.shape[0]), static_cast<int>(mask.shape[1]),
              map.data(), static_cast<int>(map.shape[0]), static_cast<int>(map.shape[1]));
}

void PixelMetricState::merge(const PixelMetricState& other) {
    images_.insert(images_.end(), other.images_.begin(), other.images_.end());
}

void PixelMetricState::merge(PixelMetricState&& other) {
    images_.reserve(images_.size() + other.images_.size());
    for (auto& image : other.images_) images_.push_back(std::move(image));
    other.images_.clear();
}

uint64_t PixelMetricState::pixel_count() const {
    uint64_t total = 0;
    for (const auto& image : images_) total += uint64_t{image.height} * image.width;
    return total;
}

uint64_t PixelMetricState::memory_bytes() const {
    uint64_t total = images_.capacity() * sizeof(ImageRuns);
    for (const auto& image : images_) {
        total += image.name.capacity() + image.normal_keys.capacity() * sizeof(uint32_t) +
                 image.anomalous_entries.capacity() * sizeof(uint64_t) +
                 image.region_sizes.capacity() * sizeof(uint32_t);
    }
    return total;
}

std::vector<uint8_t> PixelMetricState::serialize() const {
    std::vector<uint8_t> out;
    out.reserve(memory_bytes() + 64);
    detail::ByteWriter w(out);
    w.append(kPixelMagic, 8);
    w.put<uint64_t>(images_.size());
    for (const auto& image : images_) {
        w.put_string(image.name);
        w.put<uint32_t>(image.height);
        w.put<uint32_t>(image.width);
        w.put_vector(image.region_sizes);
        w.put_vector(image.normal_keys);
        w.put_vector(image.anomalous_entries);
    }
    return out;
}

PixelMetricState PixelMetricState::deserialize(const uint8_t* data, size_t size) {
    detail::ByteReader r(data, size, "pixel metric state");
    r.expect_magic(kPixelMagic);
    PixelMetricState state;
    const uint64_t count = r.get<uint64_t>();
    for (uint64_t i = 0; i < count; ++i) {
        ImageRuns image;
        image.name = r.get_string();
        image.height = r.get<uint32_t>();
        image.width = r.get<uint32_t>();
        image.region_sizes = r.get_vector<uint32_t>();
        image.normal_keys = r.get_vector<uint32_t>();
        image.anomalous_entries = r.get_vector<uint64_t>();
        // The sweep relies on these invariants; check them rather than trust bytes.
        uint64_t region_total = 0;
        for (uint32_t s : image.region_sizes) {
            if (s == 0) r.fail("empty region in image '" + image.name + "'");
            region_total += s;
        }
        if (region_total != image.anomalous_entries.size() ||
            region_total + image.normal_keys.size() != uint64_t{image.height} * image.width) {
            r.fail("pixel counts of image '" + image.name + "' do not add up");
        }
        if (!std::is_sorted(image.normal_keys.begin(), image.normal_keys.end()) ||
            !std::is_sorted(image.anomalous_entries.begin(), image.anomalous_entries.end(),
                            [](uint64_t a, uint64_t b) { return (a >> 32) < (b >> 32); })) {
            r.fail("runs of image '" + image.name + "' are not sorted");
        }
        for (uint64_t e : image.anomalous_entries) {
            if ((e & 0xFFFFFFFFu) >= image.region_sizes.size()) {
                r.fail("region index out of range in image '" + image.name + "'");
            }
        }
        state.images_.push_back(std::move(image));
    }
    if (!r.at_end()) r.fail("trailing bytes");
    return state;
}

PixelMetrics PixelMetricState::compute(const PixelComputeOptions& options) const {
    if (!(options.pro_limit > 0.0 && options.pro_limit <= 1.0)) {
        throw ConfigError("AU-PRO limit must be in (0, 1], got " + std::to_string(options.pro_limit));
    }
    PixelMetrics out;
    out.au_pro_limit = options.pro_limit;
    out.images = images_.size();
    for (const auto& image : images_) {
        out.normal_pixels += image.normal_keys.size();
        out.anomalous_pixels += image.anomalous_entries.size();
        out.regions += image.region_sizes.size();
    }
    if (images_.empty()) {
        out.reason = "no images";
        return out;
    }
    if (out.anomalous_pixels == 0) {
        out.reason = "no anomalous pixel in any mask: the pixel metrics are undefined";
        return out;
    }
    if (out.normal_pixels == 0) {
        out.reason = "no normal pixel in any mask: the pixel metrics are undefined";
        return out;
    }

    if (out.regions > 0xFFFFFFFFu) {
        throw DatasetError("more than 2^32 anomalous regions in one class");
    }
    const uint64_t chunk_entries = std::max<uint64_t>(options.chunk_entries, 1);
    // Every image contributes two sorted runs: its normal keys and its
    // anomalous (key, region) entries. Region indices are made global so that
    // entries from different images can be pooled.
    struct NormalRun {
        const uint32_t* data;
        size_t pos;
        size_t end;
    };
    struct AnomalousRun {
        const uint64_t* data;
        size_t pos;
        size_t end;
        uint32_t region_offset;
    };
    std::vector<NormalRun> normal_runs;
    std::vector<AnomalousRun> anomalous_runs;
    std::vector<detail::Uint128> weights;
    weights.reserve(out.regions);
    for (const ImageRuns& image : images_) {
        if (!image.normal_keys.empty()) {
            normal_runs.push_back({image.normal_keys.data(), 0, image.normal_keys.size()});
        }
        if (!image.anomalous_entries.empty()) {
            anomalous_runs.push_back({image.anomalous_entries.data(), 0,
                                      image.anomalous_entries.size(),
                                      static_cast<uint32_t>(weights.size())});
        }
        for (uint32_t size : image.region_sizes) weights.push_back(detail::region_weight(size));
    }

    detail::SweepConfig config;
    config.negatives = out.normal_pixels;
    config.positives = out.anomalous_pixels;
    config.with_pro = true;
    config.regions = out.regions;
    config.pro_limit = options.pro_limit;
    config.keep_curve = options.keep_curve;
    detail::ThresholdSweep sweep(config);

    // Position in each run of the first entry whose key is >= `limit`.
    auto normal_bound = [](const NormalRun& run, uint64_t limit) {
        return static_cast<size_t>(
            std::lower_bound(run.data + run.pos, run.data + run.end, limit) - run.data);
    };
    auto anomalous_bound = [](const AnomalousRun& run, uint64_t limit) {
        return static_cast<size_t>(
            std::lower_bound(run.data + run.pos, run.data + run.end, limit,
                             [](uint64_t entry, uint64_t l) { return (entry >> 32) < l; }) -
            run.data);
    };
    // Entries left with key < limit.
    auto count_below = [&](uint64_t limit) {
        uint64_t count = 0;
        for (const auto& run : normal_runs) count += normal_bound(run, limit) - run.pos;
        for (const auto& run : anomalous_runs) count += anomalous_bound(run, limit) - run.pos;
        return count;
    };

    // The sweep walks key ranges [low, high) from the highest score down. Each
    // range holds at most chunk_entries entries (or a single key), gathered
    // from every run, radix-sorted and fed to the sweep one distinct key at a
    // time. A group's counts and weight sum are integers, so neither the runs'
    // order nor the chunking can change a bit of the result. One thread: about
    // 2 s for 178 M pixels here (docs/metrics.md, "Benchmark").
    std::vector<uint32_t> normal_chunk, normal_scratch;
    std::vector<uint64_t> anomalous_chunk, anomalous_scratch;
    uint64_t remaining = out.normal_pixels + out.anomalous_pixels;
    while (remaining > 0) {
        uint64_t low = std::numeric_limits<uint64_t>::max();
        for (const auto& run : normal_runs) {
            if (run.pos < run.end) low = std::min<uint64_t>(low, run.data[run.pos]);
        }
        for (const auto& run : anomalous_runs) {
            if (run.pos < run.end) low = std::min<uint64_t>(low, run.data[run.pos] >> 32);
        }
        // Largest high in (low, 2^32] whose range fits in a chunk; low + 1
        // when that single key alone holds more entries.
        uint64_t high = uint64_t{1} << 32;
        if (remaining > chunk_entries) {
            uint64_t fits = low + 1, fails = uint64_t{1} << 32;
            while (fails - fits > 1) {
                const uint64_t mid = fits + (fails - fits) / 2;
                (count_below(mid) <= chunk_entries ? fits : fails) = mid;
            }
            high = fits;
        }
        if (high == low + 1 && count_below(high) > chunk_entries) {
            // One massively tied score: count it in place instead of copying.
            uint64_t negatives = 0, positives = 0;
            detail::Uint128 overlap = 0;
            for (auto& run : normal_runs) {
                const size_t stop = normal_bound(run, high);
                negatives += stop - run.pos;
                run.pos = stop;
            }
            for (auto& run : anomalous_runs) {
                const size_t stop = anomalous_bound(run, high);
                for (; run.pos < stop; ++run.pos) {
                    overlap += weights[run.region_offset + (run.data[run.pos] & 0xFFFFFFFFu)];
                    ++positives;
                }
            }
            remaining -= negatives + positives;
            sweep.add_group(static_cast<double>(key_score(static_cast<uint32_t>(low))), negatives,
                            positives, overlap);
            continue;
        }

        normal_chunk.clear();
        anomalous_chunk.clear();
        for (auto& run : normal_runs) {
            const size_t stop = normal_bound(run, high);
            normal_chunk.insert(normal_chunk.end(), run.data + run.pos, run.data + stop);
            run.pos = stop;
        }
        for (auto& run : anomalous_runs) {
            const size_t stop = anomalous_bound(run, high);
            for (size_t i = run.pos; i < stop; ++i) {
                const uint64_t entry = run.data[i];
                anomalous_chunk.push_back((entry & 0xFFFFFFFF00000000u) |
                                          (run.region_offset + (entry & 0xFFFFFFFFu)));
            }
            run.pos = stop;
        }
        remaining -= normal_chunk.size() + anomalous_chunk.size();
        radix_sort_by_key(normal_chunk, normal_scratch);
        radix_sort_by_key(anomalous_chunk, anomalous_scratch);

        // Two sorted lists walked together, one distinct key at a time.
        size_t n = 0, a = 0;
        while (n < normal_chunk.size() || a < anomalous_chunk.size()) {
            uint32_t key = std::numeric_limits<uint32_t>::max();
            if (n < normal_chunk.size()) key = normal_chunk[n];
            if (a < anomalous_chunk.size()) key = std::min(key, key_of(anomalous_chunk[a]));
            const size_t n_start = n;
            while (n < normal_chunk.size() && normal_chunk[n] == key) ++n;
            uint64_t positives = 0;
            detail::Uint128 overlap = 0;
            for (; a < anomalous_chunk.size() && key_of(anomalous_chunk[a]) == key; ++a) {
                overlap += weights[anomalous_chunk[a] & 0xFFFFFFFFu];
                ++positives;
            }
            sweep.add_group(static_cast<double>(key_score(key)), n - n_start, positives, overlap);
        }
    }

    out.pixel_auroc = sweep.auroc();
    out.pixel_aupr = sweep.aupr();
    out.pixel_f1_max = sweep.f1_max();
    out.pixel_f1_threshold = sweep.f1_threshold();
    out.au_pro = sweep.au_pro();
    out.pro_curve_fpr = sweep.curve_fpr();
    out.pro_curve_pro = sweep.curve_pro();
    return out;
}

std::vector<uint8_t> ClassMetricState::serialize() const {
    const std::vector<uint8_t> image_bytes = image.serialize();
    const std::vector<uint8_t> pixel_bytes = pixel.serialize();
    std::vector<uint8_t> out;
    out.reserve(24 + image_bytes.size() + pixel_bytes.size());
    detail::ByteWriter w(out);
    w.append(kClassMagic, 8);
    w.put_vector(image_bytes);
    w.put_vector(pixel_bytes);
    return out;
}

ClassMetricState ClassMetricState::deserialize(const uint8_t* data, size_t size) {
    detail::ByteReader r(data, size, "class metric state");
    r.expect_magic(kClassMagic);
    ClassMetricState state;
    const uint64_t image_size = r.get<uint64_t>();
    const uint8_t* image_data = r.take_span(image_size);
    const uint64_t pixel_size = r.get<uint64_t>();
    const uint8_t* pixel_data = r.take_span(pixel_size);
    if (!r.at_end()) r.fail("trailing bytes");
    state.image = ImageMetricState::deserialize(image_data, image_size);
    state.pixel = PixelMetricState::deserialize(pixel_data, pixel_size);
    return state;
}

}  // namespace winclip::metrics
