// Exact pixel metrics for a class the size of MVTec AD's largest test split
// (about 170 images at 1024 x 1024, 178 M pixels): time to reduce each image to
// sorted runs, time for the exact sweep (pixel AUROC, AUPR, F1-max, AU-PRO),
// and the process's peak resident memory per pixel. Maps and masks are
// synthetic but shaped like real ones: smooth maps upsampled from a coarse
// grid (as WinCLIP's 15 x 15 patch grid is), blob-shaped defects of very
// different sizes, about a third of the images defect-free. Each map exists
// only while its image is added.
//
//   metrics_bench [--images N] [--height H] [--width W] [--parts K]
//
// --parts K splits the images over K states that are serialised and merged,
// as ranks' states are gathered (bit-identity is tested in tests/metrics/).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "metrics/metrics.h"

namespace {

using Clock = std::chrono::steady_clock;

// Peak and current resident set size of this process, in bytes.
double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Uniform [0, 1) from mt19937's raw output, the same on every platform.
struct Random {
    explicit Random(uint32_t seed) : engine(seed) {}
    double uniform() { return (engine() >> 5) * (1.0 / 134217728.0); }
    std::mt19937 engine;
};

void synthesise(int index, int height, int width, std::vector<uint8_t>& mask,
                std::vector<float>& map) {
    Random rng(1000 + index);
    const size_t n = static_cast<size_t>(height) * width;
    mask.assign(n, 0);
    map.resize(n);
    // Defects: none for a third of the images, else 1-4 ellipses whose radii
    // range from a few pixels (a scratch) to a fifth of the image.
    struct Blob { double cy, cx, ry, rx; };
    std::vector<Blob> blobs;
    if (index % 3 != 0) {
        const int count = 1 + static_cast<int>(rng.uniform() * 4);
        for (int b = 0; b < count; ++b) {
            const double scale = std::pow(rng.uniform(), 1.5) * 0.2 * height + 2;
            blobs.push_back({rng.uniform() * height, rng.uniform() * width,
                             scale * (0.3 + rng.uniform()), scale * (0.3 + rng.uniform())});
        }
    }
    for (const Blob& b : blobs) {
        const int y0 = std::max(0, static_cast<int>(b.cy - b.ry));
        const int y1 = std::min(height - 1, static_cast<int>(b.cy + b.ry));
        const int x0 = std::max(0, static_cast<int>(b.cx - b.rx));
        const int x1 = std::min(width - 1, static_cast<int>(b.cx + b.rx));
        for (int y = y0; y <= y1; ++y) {
            for (int x = x0; x <= x1; ++x) {
                const double dy = (y - b.cy) / b.ry, dx = (x - b.cx) / b.rx;
                if (dy * dy + dx * dx <= 1.0) mask[static_cast<size_t>(y) * width + x] = 255;
            }
        }
    }
    // Map: a 15 x 15 grid of random levels, bilinearly upsampled, raised where
    // the defect is, plus noise (so most pixel values are distinct).
    constexpr int kGrid = 15;
    double grid[kGrid][kGrid];
    for (auto& row : grid) {
        for (double& v : row) v = 0.3 * rng.uniform();
    }
    for (int y = 0; y < height; ++y) {
        const double gy = std::min(std::max((y + 0.5) * kGrid / height - 0.5, 0.0), kGrid - 1.0);
        const int iy = std::min(static_cast<int>(gy), kGrid - 2);
        const double fy = gy - iy;
        for (int x = 0; x < width; ++x) {
            const double gx = std::min(std::max((x + 0.5) * kGrid / width - 0.5, 0.0), kGrid - 1.0);
            const int ix = std::min(static_cast<int>(gx), kGrid - 2);
            const double fx = gx - ix;
            double v = (1 - fy) * ((1 - fx) * grid[iy][ix] + fx * grid[iy][ix + 1]) +
                       fy * ((1 - fx) * grid[iy + 1][ix] + fx * grid[iy + 1][ix + 1]);
            const size_t p = static_cast<size_t>(y) * width + x;
            if (mask[p]) v += 0.05 + 0.2 * rng.uniform();
            v += 0.1 * rng.uniform();
            map[p] = static_cast<float>(v);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    int images = 170, height = 1024, width = 1024, parts = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const int value = std::atoi(argv[i + 1]);
        if (flag == "--images") images = value;
        else if (flag == "--height") height = value;
        else if (flag == "--width") width = value;
        else if (flag == "--parts") parts = value;
        else {
            std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
            return 2;
        }
    }
    if (images < 1 || height < 1 || width < 1 || parts < 1) {
        std::fprintf(stderr, "flags must be positive\n");
        return 2;
    }
    const uint64_t baseline_kb = uint64_t(winclip::process_memory_bytes("VmRSS") / 1024);

    using winclip::metrics::PixelMetricState;
    std::vector<PixelMetricState> states(parts);
    std::vector<uint8_t> mask;
    std::vector<float> map;
    double synth_s = 0, add_s = 0;
    for (int i = 0; i < images; ++i) {
        auto t0 = Clock::now();
        synthesise(i, height, width, mask, map);
        synth_s += seconds_since(t0);
        t0 = Clock::now();
        states[i % parts].add_image("synthetic/" + std::to_string(i), mask.data(), map.data(),
                                    height, width);
        add_s += seconds_since(t0);
    }
    mask = std::vector<uint8_t>();
    map = std::vector<float>();

    auto t0 = Clock::now();
    PixelMetricState merged;
    uint64_t state_bytes = 0;
    for (auto& state : states) {
        state_bytes += state.memory_bytes();
        if (parts == 1) {
            merged.merge(std::move(state));
        } else {
            // Through bytes, as a rank's state travels in an MPI gather.
            std::vector<uint8_t> bytes = state.serialize();
            state = PixelMetricState();
            merged.merge(PixelMetricState::deserialize(bytes));
        }
    }
    const double merge_s = seconds_since(t0);

    t0 = Clock::now();
    const winclip::metrics::PixelMetrics m = merged.compute();
    const double compute_s = seconds_since(t0);

    const uint64_t pixels = uint64_t(images) * height * width;
    const uint64_t peak_kb = uint64_t(winclip::process_memory_bytes("VmHWM") / 1024);
    std::printf("images %d of %d x %d = %.1f M pixels (%llu anomalous, %llu regions), %d part(s)\n",
                images, height, width, pixels / 1e6, (unsigned long long)m.anomalous_pixels,
                (unsigned long long)m.regions, parts);
    std::printf("pixel AUROC %.6f  AUPR %.6f  F1-max %.6f (t = %.9g)  AU-PRO@0.3 %.6f\n",
                m.pixel_auroc, m.pixel_aupr, m.pixel_f1_max, m.pixel_f1_threshold, m.au_pro);
    std::printf("time: synthesise %.2f s (not metrics), add_image %.2f s, merge %.2f s, "
                "compute %.2f s, metrics total %.2f s\n",
                synth_s, add_s, merge_s, compute_s, add_s + merge_s + compute_s);
    std::printf("memory: state %.1f MiB (%.2f B/pixel); peak RSS %.1f MiB (%.2f B/pixel), "
                "of which %.1f MiB before the first image\n",
                state_bytes / 1048576.0, double(state_bytes) / pixels, peak_kb / 1024.0,
                peak_kb * 1024.0 / pixels, baseline_kb / 1024.0);
    return 0;
}
