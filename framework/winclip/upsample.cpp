// Bilinear upsampling of grid maps to the model input and to the original
// image (pipeline.h). Plain loops: the maps are small and this keeps the
// function usable without LibTorch.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "winclip/pipeline.h"

namespace winclip::method {
namespace {

// Linear interpolation weights along one axis for a continuous source
// coordinate (pixel centres at integers). Coordinates outside [0, n - 1] are
// clamped, which is what align_corners=false bilinear interpolation does at
// the borders and what makes pixels outside a crop take the nearest value.
struct Tap {
    int i0, i1;
    double w1;  // weight of i1; i0 gets 1 - w1
};

Tap tap(double src, int n) {
    src = std::clamp(src, 0.0, static_cast<double>(n - 1));
    const int i0 = static_cast<int>(std::floor(src));
    const int i1 = std::min(i0 + 1, n - 1);
    return {i0, i1, src - i0};
}

void check_grid(const FloatArray& grid_map, const char* function) {
    if (grid_map.shape.size() != 2 || grid_map.shape[0] < 1 || grid_map.shape[1] < 1 ||
        static_cast<int64_t>(grid_map.values.size()) != grid_map.numel()) {
        throw ConfigError(fmt::format("{}: grid map must be a non-empty [g, g] array, got shape {}",
                                      function, shape_string(grid_map.shape)));
    }
}

// out[y, x] = bilinear sample of `grid` at (src_y(y), src_x(x)).
template <typename SrcY, typename SrcX>
FloatArray resample(const FloatArray& grid, int out_h, int out_w, SrcY src_y, SrcX src_x) {
    const int gh = static_cast<int>(grid.shape[0]);
    const int gw = static_cast<int>(grid.shape[1]);
    std::vector<Tap> xs(out_w);
    for (int x = 0; x < out_w; ++x) xs[x] = tap(src_x(x), gw);
    FloatArray out({out_h, out_w});
    const float* g = grid.data();
    for (int y = 0; y < out_h; ++y) {
        const Tap ty = tap(src_y(y), gh);
        const float* r0 = g + static_cast<int64_t>(ty.i0) * gw;
        const float* r1 = g + static_cast<int64_t>(ty.i1) * gw;
        float* o = out.data() + static_cast<int64_t>(y) * out_w;
        for (int x = 0; x < out_w; ++x) {
            const Tap& tx = xs[x];
            const double top = r0[tx.i0] * (1.0 - tx.w1) + r0[tx.i1] * tx.w1;
            const double bottom = r1[tx.i0] * (1.0 - tx.w1) + r1[tx.i1] * tx.w1;
            o[x] = static_cast<float>(top * (1.0 - ty.w1) + bottom * ty.w1);
        }
    }
    return out;
}

}  // namespace

FloatArray upsample_to_input(const FloatArray& grid_map, int size) {
    check_grid(grid_map, "upsample_to_input");
    if (size < 1) {
        throw ConfigError(fmt::format("upsample_to_input: size must be >= 1, got {}", size));
    }
    // Same source coordinate as torch.nn.functional.interpolate(mode="bilinear",
    // align_corners=False): output pixel centres mapped onto input pixel centres.
    const double sy = static_cast<double>(grid_map.shape[0]) / size;
    const double sx = static_cast<double>(grid_map.shape[1]) / size;
    return resample(
        grid_map, size, size, [&](int y) { return (y + 0.5) * sy - 0.5; },
        [&](int x) { return (x + 0.5) * sx - 0.5; });
}

FloatArray upsample_to_native(const FloatArray& grid_map, const ImageGeometry& geo) {
    check_grid(grid_map, "upsample_to_native");
    if (geo.width < 1 || geo.height < 1) {
        throw ConfigError(fmt::format("upsample_to_native: image size must be positive, got {}x{}",
                                      geo.width, geo.height));
    }
    if (!(geo.crop_x1 > geo.crop_x0) || !(geo.crop_y1 > geo.crop_y0)) {
        throw ConfigError(fmt::format(
            "upsample_to_native: empty crop footprint x [{}, {}), y [{}, {}) in a {}x{} image",
            geo.crop_x0, geo.crop_x1, geo.crop_y0, geo.crop_y1, geo.width, geo.height));
    }
    // The grid covers exactly the crop's footprint: grid cell i spans
    // [x0 + i * cw, x0 + (i + 1) * cw) in original pixels. An original pixel
    // centre u + 0.5 therefore sits at grid coordinate (u + 0.5 - x0) / cw - 0.5.
    // For the untouched S x S input this reduces to upsample_to_input.
    const double cw = (geo.crop_x1 - geo.crop_x0) / static_cast<double>(grid_map.shape[1]);
    const double ch = (geo.crop_y1 - geo.crop_y0) / static_cast<double>(grid_map.shape[0]);
    return resample(
        grid_map, geo.height, geo.width, [&](int y) { return (y + 0.5 - geo.crop_y0) / ch - 0.5; },
        [&](int x) { return (x + 0.5 - geo.crop_x0) / cw - 0.5; });
}

}  // namespace winclip::method
