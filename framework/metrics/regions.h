// Connected anomalous regions of a ground-truth mask, as the per-region-overlap
// (PRO) metric of the MVTec AD benchmark defines them: 8-connected components
// of the pixels whose mask value is non-zero.
#pragma once

#include <cstdint>
#include <vector>

namespace winclip::metrics {

struct RegionLabels {
    // [height * width] row-major; -1 for a normal pixel, otherwise the region
    // index in [0, sizes.size()). Regions are numbered in raster order of their
    // first pixel, so the numbering depends only on the mask.
    std::vector<int32_t> labels;
    // Pixel count of each region, all > 0.
    std::vector<uint32_t> sizes;
};

// 8-connected components of `mask != 0` ([height, width] row-major). Any
// non-zero value is anomalous, so masks stored as {0, 1}, {0, 255} or class
// ids {0, k} give the same regions. `mask == nullptr` means an all-normal image.
RegionLabels label_regions(const uint8_t* mask, int height, int width);

}  // namespace winclip::metrics
