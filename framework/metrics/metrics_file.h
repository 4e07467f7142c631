// Scoring stored results: reads labels/scores and masks/maps from a group of
// an HDF5 file (laid out like the groups of metrics-golden.h5) and writes the
// metrics as JSON. This is what `winclip metrics` runs, so maps from any tool
// are scored exactly like the framework's own.
#pragma once

#include <string>

#include "metrics/metrics.h"

namespace winclip::metrics {

struct MetricsFileOptions {
    std::string group = "/";              // HDF5 group holding the datasets
    double pro_limit = kDefaultProLimit;  // AU-PRO FPR limit, in (0, 1]
    bool curve = false;                   // also return the PRO curve
};

struct MetricsFileResult {
    bool has_image = false;  // `labels` and `scores` were present
    ImageMetrics image;
    bool has_pixel = false;  // `masks` and `maps` were present
    PixelMetrics pixel;
};

// Under `options.group`: `labels` [N] (0/1) with `scores` [N], and/or `masks`
// and `maps` [N, H, W] (masks any numeric type, non-zero anomalous; maps
// evaluated as float32). `masks` and `maps` may instead be groups holding one
// [H_i, W_i] dataset per image named "0", "1", ... for images of different
// sizes. A `paths` [N] string dataset, when present, names the images in
// errors. Throws IoError / DatasetError / ConfigError on bad input.
MetricsFileResult evaluate_metrics_file(const std::string& path, const MetricsFileOptions& options);

// The JSON document of `winclip metrics`: keys in a fixed order, numbers with
// 17 significant digits, an undefined value as null with "<key>_reason".
std::string metrics_json(const MetricsFileResult& result, bool curve);

// Writes `text` to `path`, throwing IoError naming the path on failure.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace winclip::metrics
