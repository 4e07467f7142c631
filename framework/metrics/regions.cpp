#include "metrics/regions.h"

#include <numeric>

#include "core/error.h"

namespace winclip::metrics {

namespace {

// Union-find over provisional labels; the smaller label becomes the root, so a
// root is always the provisional label assigned first in raster order.
int32_t find_root(std::vector<int32_t>& parent, int32_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

void unite(std::vector<int32_t>& parent, int32_t a, int32_t b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a < b) {
        parent[b] = a;
    } else if (b < a) {
        parent[a] = b;
    }
}

}  // namespace

RegionLabels label_regions(const uint8_t* mask, int height, int width) {
    WINCLIP_CHECK(height > 0 && width > 0);
    const size_t n = static_cast<size_t>(height) * static_cast<size_t>(width);
    RegionLabels out;
    out.labels.assign(n, -1);
    if (mask == nullptr) return out;

    // Pass 1: provisional labels from the four already-visited 8-neighbours
    // (west, north-west, north, north-east), recording equivalences.
    std::vector<int32_t> parent;
    std::vector<int32_t>& lab = out.labels;
    for (int y = 0; y < height; ++y) {
        const size_t row = static_cast<size_t>(y) * width;
        for (int x = 0; x < width; ++x) {
            if (mask[row + x] == 0) continue;
            int32_t current = -1;
            auto join = [&](int32_t neighbour) {
                if (neighbour < 0) return;
                if (current < 0) {
                    current = neighbour;
                } else if (neighbour != current) {
                    unite(parent, current, neighbour);
                }
            };
            if (x > 0) join(lab[row + x - 1]);
            if (y > 0) {
                const size_t up = row - width;
                if (x > 0) join(lab[up + x - 1]);
                join(lab[up + x]);
                if (x + 1 < width) join(lab[up + x + 1]);
            }
            if (current < 0) {
                current = static_cast<int32_t>(parent.size());
                parent.push_back(current);
            }
            lab[row + x] = current;
        }
    }

    // Pass 2: resolve to roots and renumber roots densely in order of first
    // appearance (roots are the smallest label of their set, so this is raster
    // order of each region's first pixel).
    std::vector<int32_t> dense(parent.size(), -1);
    int32_t next = 0;
    for (size_t i = 0; i < parent.size(); ++i) {
        const int32_t root = find_root(parent, static_cast<int32_t>(i));
        if (dense[root] < 0) dense[root] = next++;
        dense[i] = dense[root];
    }
    out.sizes.assign(static_cast<size_t>(next), 0);
    for (size_t i = 0; i < n; ++i) {
        if (lab[i] < 0) continue;
        lab[i] = dense[lab[i]];
        ++out.sizes[lab[i]];
    }
    return out;
}

}  // namespace winclip::metrics
