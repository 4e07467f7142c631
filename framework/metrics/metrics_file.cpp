#include "metrics/metrics_file.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>

#include "core/error.h"
#include "io/hdf5.h"

namespace winclip::metrics {

namespace {

std::string join_path(const std::string& group, const std::string& name) {
    if (group.empty() || group == "/") return "/" + name;
    return (group.back() == '/' ? group : group + "/") + name;
}

// Names of images for error messages: the `paths` dataset when it fits.
std::vector<std::string> image_names(const io::H5File& file, const std::string& group, size_t n,
                                     const std::string& what) {
    std::vector<std::string> names;
    const std::string paths = join_path(group, "paths");
    if (file.exists(paths) && !file.is_group(paths)) {
        names = file.read_strings(paths);
        if (names.size() == n) {
            for (size_t i = 0; i < n; ++i) {
                names[i] = fmt::format("{} ({}:{}[{}])", names[i], file.path(), what, i);
            }
            return names;
        }
    }
    names.resize(n);
    for (size_t i = 0; i < n; ++i) names[i] = fmt::format("{}:{}[{}]", file.path(), what, i);
    return names;
}

void read_image_level(const io::H5File& file, const std::string& group, MetricsFileResult& out) {
    const std::string labels_path = join_path(group, "labels");
    const std::string scores_path = join_path(group, "scores");
    // Read as double, whatever the stored type: an integer conversion would
    // truncate a stored 0.7 to 0 and turn NaN into an arbitrary integer.
    const DoubleArray labels = file.read_double(labels_path);
    const DoubleArray scores = file.read_double(scores_path);
    if (labels.shape.size() != 1 || scores.shape != labels.shape) {
        throw DatasetError(fmt::format("{}: expected {} and {} of one shape [N], found {} and {}",
                                       file.path(), labels_path, scores_path,
                                       shape_string(labels.shape), shape_string(scores.shape)));
    }
    const auto names = image_names(file, group, labels.values.size(), scores_path);
    ImageMetricState state;
    for (size_t i = 0; i < labels.values.size(); ++i) {
        const double label = labels.values[i];
        if (label != 0.0 && label != 1.0) {
            throw DatasetError(fmt::format("{}: {}[{}] is {}; labels must be 0 or 1", file.path(),
                                           labels_path, i, label));
        }
        state.add(label == 1.0 ? 1 : 0, scores.values[i], names[i]);
    }
    out.has_image = true;
    out.image = state.compute();
}

void add_pixel_image(PixelMetricState& state, const std::string& name, const float* mask_values,
                     int64_t mask_h, int64_t mask_w, const float* map_values, int64_t map_h,
                     int64_t map_w) {
    std::vector<uint8_t> binary(static_cast<size_t>(mask_h * mask_w));
    for (size_t p = 0; p < binary.size(); ++p) binary[p] = mask_values[p] != 0.0f ? 1 : 0;
    state.add_image(name, binary.data(), static_cast<int>(mask_h), static_cast<int>(mask_w),
                    map_values, static_cast<int>(map_h), static_cast<int>(map_w));
}

void read_pixel_level(const io::H5File& file, const std::string& group,
                      const MetricsFileOptions& options, MetricsFileResult& out) {
    const std::string masks_path = join_path(group, "masks");
    const std::string maps_path = join_path(group, "maps");
    const bool masks_group = file.is_group(masks_path);
    if (masks_group != file.is_group(maps_path)) {
        throw DatasetError(fmt::format("{}: {} and {} must both be datasets [N, H, W] or both "
                                       "groups of per-image datasets",
                                       file.path(), masks_path, maps_path));
    }
    PixelMetricState state;
    if (!masks_group) {
        // Masks are read as float32 too: exact for every 8- and 16-bit value,
        // and a non-zero integer never rounds to zero. Whole datasets are read
        // because the HDF5 wrapper has no per-image slice read yet: this holds
        // 8 bytes per pixel while the images are reduced (see
        // docs/known-differences.md, "Metrics").
        const FloatArray masks = file.read_float(masks_path);
        const FloatArray maps = file.read_float(maps_path);
        if (masks.shape.size() != 3 || maps.shape.size() != 3 || masks.shape[0] != maps.shape[0]) {
            throw DatasetError(fmt::format("{}: expected {} and {} as [N, H, W] with one N, found "
                                           "{} and {}",
                                           file.path(), masks_path, maps_path,
                                           shape_string(masks.shape), shape_string(maps.shape)));
        }
        const int64_t n = masks.shape[0];
        const auto names = image_names(file, group, static_cast<size_t>(n), maps_path);
        const int64_t mask_size = masks.shape[1] * masks.shape[2];
        const int64_t map_size = maps.shape[1] * maps.shape[2];
        for (int64_t i = 0; i < n; ++i) {
            add_pixel_image(state, names[i], masks.data() + i * mask_size, masks.shape[1],
                            masks.shape[2], maps.data() + i * map_size, maps.shape[1],
                            maps.shape[2]);
        }
    } else {
        const auto mask_names = file.list(masks_path);
        const auto map_names = file.list(maps_path);
        if (mask_names.size() != map_names.size()) {
            throw DatasetError(fmt::format("{}: {} holds {} images but {} holds {}", file.path(),
                                           masks_path, mask_names.size(), maps_path,
                                           map_names.size()));
        }
        const size_t n = mask_names.size();
        const auto names = image_names(file, group, n, maps_path);
        for (size_t i = 0; i < n; ++i) {
            const std::string mask_i = join_path(masks_path, std::to_string(i));
            const std::string map_i = join_path(maps_path, std::to_string(i));
            if (!file.exists(mask_i) || !file.exists(map_i)) {
                throw DatasetError(fmt::format("{}: per-image datasets must be named 0..{}; {} or "
                                               "{} is missing",
                                               file.path(), n - 1, mask_i, map_i));
            }
            const FloatArray mask = file.read_float(mask_i);
            const FloatArray map = file.read_float(map_i);
            if (mask.shape.size() != 2 || map.shape.size() != 2) {
                throw DatasetError(fmt::format("{}: expected {} and {} as [H, W], found {} and {}",
                                               file.path(), mask_i, map_i,
                                               shape_string(mask.shape), shape_string(map.shape)));
            }
            add_pixel_image(state, names[i], mask.data(), mask.shape[0], mask.shape[1],
                            map.data(), map.shape[0], map.shape[1]);
        }
    }
    PixelComputeOptions compute_options;
    compute_options.pro_limit = options.pro_limit;
    compute_options.keep_curve = options.curve;
    out.has_pixel = true;
    out.pixel = state.compute(compute_options);
}

// 17 significant digits round-trip every double; JSON has no NaN or infinity.
std::string number(double v) { return fmt::format("{:.17g}", v); }

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

class JsonObjectWriter {
public:
    void value(const std::string& key, double v, const std::string& reason) {
        if (std::isfinite(v)) {
            raw(key, number(v));
        } else {
            raw(key, "null");
            raw(key + "_reason", quote(reason.empty() ? "undefined" : reason));
        }
    }
    void raw(const std::string& key, const std::string& json) {
        text_ += (text_.empty() ? "{\n  " : ",\n  ") + quote(key) + ": " + json;
    }
    std::string finish() const { return (text_.empty() ? "{" : text_ + "\n") + "}\n"; }

private:
    std::string text_;
};

std::string number_array(const std::vector<double>& values) {
    std::string out = "[";
    for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + number(values[i]);
    return out + "]";
}

}  // namespace

MetricsFileResult evaluate_metrics_file(const std::string& path,
                                        const MetricsFileOptions& options) {
    if (!(options.pro_limit > 0.0 && options.pro_limit <= 1.0)) {
        throw ConfigError(fmt::format("AU-PRO limit must be in (0, 1], got {}", options.pro_limit));
    }
    io::H5File file(path, io::H5File::Mode::kRead);
    const std::string& group = options.group;
    if (group != "/" && (!file.exists(group) || !file.is_group(group))) {
        throw DatasetError(fmt::format("{}: no group '{}'", path, group));
    }
    MetricsFileResult out;
    const bool has_labels = file.exists(join_path(group, "labels"));
    const bool has_scores = file.exists(join_path(group, "scores"));
    const bool has_masks = file.exists(join_path(group, "masks"));
    const bool has_maps = file.exists(join_path(group, "maps"));
    if (has_labels != has_scores) {
        throw DatasetError(fmt::format("{}: group '{}' has {} but no {}", path, group,
                                       has_labels ? "labels" : "scores",
                                       has_labels ? "scores" : "labels"));
    }
    if (has_masks != has_maps) {
        throw DatasetError(fmt::format("{}: group '{}' has {} but no {}", path, group,
                                       has_masks ? "masks" : "maps", has_masks ? "maps" : "masks"));
    }
    if (!has_labels && !has_masks) {
        throw DatasetError(fmt::format("{}: group '{}' holds neither labels/scores nor masks/maps",
                                       path, group));
    }
    if (has_labels) read_image_level(file, group, out);
    if (has_masks) read_pixel_level(file, group, options, out);
    return out;
}

std::string metrics_json(const MetricsFileResult& result, bool curve) {
    JsonObjectWriter w;
    if (result.has_image) {
        const ImageMetrics& m = result.image;
        w.value("auroc", m.auroc, m.reason);
        w.value("aupr", m.aupr, m.reason);
        w.value("f1_max", m.f1_max, m.reason);
        w.value("f1_threshold", m.f1_threshold, m.reason);
    }
    if (result.has_pixel) {
        const PixelMetrics& m = result.pixel;
        w.value("pixel_auroc", m.pixel_auroc, m.reason);
        w.value("pixel_aupr", m.pixel_aupr, m.reason);
        w.value("pixel_f1_max", m.pixel_f1_max, m.reason);
        w.value("pixel_f1_threshold", m.pixel_f1_threshold, m.reason);
        w.value("au_pro", m.au_pro, m.reason);
        w.raw("au_pro_limit", number(m.au_pro_limit));
        if (curve) {
            if (std::isfinite(m.au_pro)) {
                w.raw("pro_curve", "{\"fpr\": " + number_array(m.pro_curve_fpr) +
                                       ", \"pro\": " + number_array(m.pro_curve_pro) + "}");
            } else {
                w.raw("pro_curve", "null");
                w.raw("pro_curve_reason", quote(m.reason));
            }
        }
    }
    return w.finish();
}

void write_text_file(const std::string& path, const std::string& text) {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file) throw IoError(fmt::format("cannot open '{}' for writing", path));
    file << text;
    file.flush();
    if (!file) throw IoError(fmt::format("failed writing '{}'", path));
}

}  // namespace winclip::metrics
