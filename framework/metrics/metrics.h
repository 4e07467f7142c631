// Exact anomaly-detection metrics with mergeable per-rank state.
//
// Image level: AUROC, AUPR (average precision) and F1-max over (label, score)
// pairs. Pixel level: the same over every pixel of every image of a class, plus
// AU-PRO (the per-region-overlap curve of the MVTec AD benchmark, which the
// WinCLIP paper reports as "PRO"). Definitions are in docs/metrics.md; every
// value is exact over all distinct thresholds, scores are used as given (no
// sigmoid, no min-max scaling), and a class with only one label yields NaN with
// a reason instead of a number.
//
// Typical use, one state per class and rank:
//
//   ImageMetricState image;  PixelMetricState pixel;
//   for each test image: image.add(label, score, name);
//                        pixel.add_image(name, mask, map, height, width);
//   bytes = pixel.serialize();  ...gather...  pixel.merge(PixelMetricState::deserialize(b));
//   ImageMetrics im = image.compute();  PixelMetrics pm = pixel.compute();
//
// Results are bit-identical however the images are split over states and in
// whatever order the states are merged: the computation reads only the
// multiset of entries and accumulates integer counts.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/array.h"

namespace winclip::metrics {

constexpr double kDefaultProLimit = 0.3;

struct ImageMetrics {
    static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
    double auroc = kNaN;         // in [0, 1]; ties count one half
    double aupr = kNaN;          // average precision, in [0, 1]
    double f1_max = kNaN;        // in [0, 1]
    double f1_threshold = kNaN;  // a stored score: anomalous when score >= it
    // Why the values are NaN ("" when they are defined).
    std::string reason;
    uint64_t normal_count = 0;
    uint64_t anomalous_count = 0;
};

struct PixelMetrics {
    static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
    double pixel_auroc = kNaN;
    double pixel_aupr = kNaN;
    double pixel_f1_max = kNaN;
    double pixel_f1_threshold = kNaN;  // a stored map value widened to double
    double au_pro = kNaN;              // normalised area, in [0, 1]
    double au_pro_limit = kDefaultProLimit;
    // Why the values are NaN ("" when they are defined). The same conditions
    // (no normal or no anomalous pixel) make every pixel metric undefined.
    std::string reason;
    // PRO curve from (0, 0) to FPR = au_pro_limit (interpolated end point),
    // unscaled; filled only when PixelComputeOptions::keep_curve.
    std::vector<double> pro_curve_fpr;
    std::vector<double> pro_curve_pro;
    uint64_t normal_pixels = 0;
    uint64_t anomalous_pixels = 0;
    uint64_t regions = 0;
    uint64_t images = 0;
};

struct PixelComputeOptions {
    double pro_limit = kDefaultProLimit;  // FPR limit L of AU-PRO, in (0, 1]
    // Return the PRO curve. Off by default: on a large class it holds one
    // point per distinct threshold below the limit (16 bytes each).
    bool keep_curve = false;
    // Entries per chunk of the final sweep; bounds its scratch memory to about
    // 24 bytes times this. The results do not depend on it (tested).
    uint64_t chunk_entries = uint64_t{1} << 22;
};

// (label, score) pairs of one class; a few bytes per image.
class ImageMetricState {
public:
    // `label` 0 (normal) or 1 (anomalous); `score` finite, used as given.
    // `name` only labels error messages. Throws DatasetError otherwise.
    void add(int label, double score, std::string_view name = {});
    void merge(const ImageMetricState& other);
    size_t size() const { return scores_.size(); }

    // Little-endian bytes for MPI gathers and files; deserialize validates and
    // throws IoError on a malformed buffer.
    std::vector<uint8_t> serialize() const;
    static ImageMetricState deserialize(const uint8_t* data, size_t size);
    static ImageMetricState deserialize(const std::vector<uint8_t>& bytes) {
        return deserialize(bytes.data(), bytes.size());
    }

    ImageMetrics compute() const;

private:
    std::vector<double> scores_;
    std::vector<uint8_t> labels_;
};

// Every pixel of a class, reduced per image to sorted runs: 4 bytes per normal
// pixel and 8 per anomalous pixel (score key + region), plus 4 bytes per
// region. The maps themselves are not kept.
class PixelMetricState {
public:
    // `mask` [mask_height, mask_width] uint8, any non-zero value anomalous
    // (nullptr: an all-normal image); `map` [map_height, map_width] float32
    // anomaly scores at the mask's resolution. Throws DatasetError naming the
    // image if the sizes differ (resizing is the caller's job) or a score is
    // NaN or infinite.
    void add_image(const std::string& name, const uint8_t* mask, int mask_height, int mask_width,
                   const float* map, int map_height, int map_width);
    // Same, for a mask and map known to share [height, width].
    void add_image(const std::string& name, const uint8_t* mask, const float* map, int height,
                   int width);
    // Same, from arrays of shape [H, W] (masks as 0/non-zero, maps as scores).
    void add_image(const std::string& name, const Array<uint8_t>& mask, const FloatArray& map);

    void merge(const PixelMetricState& other);
    void merge(PixelMetricState&& other);

    size_t image_count() const { return images_.size(); }
    uint64_t pixel_count() const;
    // Heap bytes held by the state's runs (what a gather would move).
    uint64_t memory_bytes() const;

    std::vector<uint8_t> serialize() const;
    static PixelMetricState deserialize(const uint8_t* data, size_t size);
    static PixelMetricState deserialize(const std::vector<uint8_t>& bytes) {
        return deserialize(bytes.data(), bytes.size());
    }

    // Throws ConfigError if pro_limit is outside (0, 1].
    PixelMetrics compute(const PixelComputeOptions& options = {}) const;

    // One image, reduced. Public for serialisation code and tests only.
    struct ImageRuns {
        std::string name;
        uint32_t height = 0;
        uint32_t width = 0;
        // Order keys of normal pixels' scores, ascending (= scores descending).
        std::vector<uint32_t> normal_keys;
        // (key << 32 | region index) of anomalous pixels, ascending by key.
        std::vector<uint64_t> anomalous_entries;
        // Pixel count of each 8-connected region.
        std::vector<uint32_t> region_sizes;
    };

private:
    std::vector<ImageRuns> images_;
};

// Both levels of one class, merged and shipped together.
struct ClassMetricState {
    ImageMetricState image;
    PixelMetricState pixel;

    void merge(const ClassMetricState& other) {
        image.merge(other.image);
        pixel.merge(other.pixel);
    }
    std::vector<uint8_t> serialize() const;
    static ClassMetricState deserialize(const uint8_t* data, size_t size);
    static ClassMetricState deserialize(const std::vector<uint8_t>& bytes) {
        return deserialize(bytes.data(), bytes.size());
    }
};

// Order-preserving 32-bit key of a float score with descending order: a > b
// exactly when score_key(a) < score_key(b). -0.0 maps like +0.0. Exposed for
// tests.
uint32_t score_key(float score);
float key_score(uint32_t key);

}  // namespace winclip::metrics
