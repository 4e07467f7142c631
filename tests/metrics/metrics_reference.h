// Brute-force reference implementations of the metrics, written straight from
// the definitions in docs/metrics.md (quadratic time, tiny inputs only), and a
// platform-independent random generator for test data.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <vector>

namespace winclip::metrics::testing {

// Uniform doubles from mt19937's raw output (the standard distributions differ
// between standard libraries; the engine itself does not).
class TestRandom {
public:
    explicit TestRandom(uint32_t seed) : engine_(seed) {}
    double uniform() { return (engine_() >> 5) * (1.0 / 134217728.0); }  // [0, 1)
    int below(int n) { return static_cast<int>(uniform() * n); }

private:
    std::mt19937 engine_;
};

struct RefImage {
    int height = 0;
    int width = 0;
    std::vector<uint8_t> mask;  // any non-zero anomalous
    std::vector<float> map;
};

// 8-connected components by flood fill: a second, independent labeller.
inline std::vector<int> flood_fill_regions(const RefImage& image, int* count) {
    std::vector<int> label(image.mask.size(), -1);
    int next = 0;
    for (int start = 0; start < static_cast<int>(image.mask.size()); ++start) {
        if (!image.mask[start] || label[start] >= 0) continue;
        std::vector<int> stack{start};
        label[start] = next;
        while (!stack.empty()) {
            const int p = stack.back();
            stack.pop_back();
            const int y = p / image.width, x = p % image.width;
            for (int dy = -1; dy <= 1; ++dy) {
                for (int dx = -1; dx <= 1; ++dx) {
                    const int ny = y + dy, nx = x + dx;
                    if (ny < 0 || nx < 0 || ny >= image.height || nx >= image.width) continue;
                    const int q = ny * image.width + nx;
                    if (image.mask[q] && label[q] < 0) {
                        label[q] = next;
                        stack.push_back(q);
                    }
                }
            }
        }
        ++next;
    }
    *count = next;
    return label;
}

struct RefCurveMetrics {
    double auroc = NAN, aupr = NAN, f1_max = NAN, f1_threshold = NAN, au_pro = NAN;
};

// (score, label) pairs; thresholds are every distinct score.
inline RefCurveMetrics reference_classification(const std::vector<double>& scores,
                                                const std::vector<int>& labels) {
    RefCurveMetrics m;
    double pos = 0, neg = 0;
    for (int l : labels) (l ? pos : neg) += 1;
    // AUROC as the Mann-Whitney probability, ties one half, over all pairs.
    double wins = 0;
    for (size_t i = 0; i < scores.size(); ++i) {
        if (!labels[i]) continue;
        for (size_t j = 0; j < scores.size(); ++j) {
            if (labels[j]) continue;
            wins += scores[i] > scores[j] ? 1.0 : (scores[i] == scores[j] ? 0.5 : 0.0);
        }
    }
    m.auroc = wins / (pos * neg);
    std::set<double, std::greater<double>> thresholds(scores.begin(), scores.end());
    double ap = 0, prev_recall = 0, best = -1;
    for (double t : thresholds) {
        double tp = 0, fp = 0;
        for (size_t i = 0; i < scores.size(); ++i) {
            if (scores[i] >= t) (labels[i] ? tp : fp) += 1;
        }
        const double precision = tp / (tp + fp), recall = tp / pos;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
        if (f1 > best + 1e-15) {
            best = f1;
            m.f1_threshold = t;
        }
    }
    m.aupr = ap;
    m.f1_max = best;
    return m;
}

// Pixel-level metrics plus AU-PRO at `limit`, straight from the definitions.
inline RefCurveMetrics reference_pixel(const std::vector<RefImage>& images, double limit) {
    std::vector<double> scores;
    std::vector<int> labels;
    struct Region { std::vector<double> scores; };
    std::vector<Region> regions;
    std::vector<double> normal;
    for (const auto& image : images) {
        int count = 0;
        const std::vector<int> label = flood_fill_regions(image, &count);
        const size_t base = regions.size();
        regions.resize(base + count);
        for (size_t p = 0; p < image.map.size(); ++p) {
            scores.push_back(image.map[p]);
            labels.push_back(image.mask[p] ? 1 : 0);
            if (label[p] >= 0) {
                regions[base + label[p]].scores.push_back(image.map[p]);
            } else {
                normal.push_back(image.map[p]);
            }
        }
    }
    RefCurveMetrics m = reference_classification(scores, labels);
    std::set<double, std::greater<double>> thresholds(scores.begin(), scores.end());
    std::vector<double> fpr{0.0}, pro{0.0};
    for (double t : thresholds) {
        double fp = 0;
        for (double s : normal) fp += s >= t;
        double overlap = 0;
        for (const auto& region : regions) {
            double hit = 0;
            for (double s : region.scores) hit += s >= t;
            overlap += hit / region.scores.size();
        }
        fpr.push_back(fp / normal.size());
        pro.push_back(overlap / regions.size());
    }
    double area = 0;
    for (size_t i = 1; i < fpr.size(); ++i) {
        if (fpr[i - 1] >= limit) break;
        if (fpr[i] <= limit) {
            area += (fpr[i] - fpr[i - 1]) * (pro[i] + pro[i - 1]) / 2;
        } else {
            const double at_limit =
                pro[i - 1] + (pro[i] - pro[i - 1]) * (limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1]);
            area += (limit - fpr[i - 1]) * (at_limit + pro[i - 1]) / 2;
            break;
        }
    }
    m.au_pro = area / limit;
    return m;
}

// Random images with blobs (several regions, some touching diagonally) and
// maps quantised to `levels` values so that ties occur.
inline std::vector<RefImage> random_images(uint32_t seed, int count, int levels) {
    TestRandom rng(seed);
    std::vector<RefImage> images;
    for (int i = 0; i < count; ++i) {
        RefImage image;
        image.height = 5 + rng.below(9);
        image.width = 5 + rng.below(13);
        const size_t n = static_cast<size_t>(image.height) * image.width;
        image.mask = std::vector<uint8_t>(n, 0);
        image.map = std::vector<float>(n, 0.0f);
        const int blobs = i % 3 == 0 ? 0 : 1 + rng.below(3);
        for (int b = 0; b < blobs; ++b) {
            const int cy = rng.below(image.height), cx = rng.below(image.width);
            const int ry = rng.below(3), rx = rng.below(3);
            for (int y = std::max(0, cy - ry); y <= std::min(image.height - 1, cy + ry); ++y) {
                for (int x = std::max(0, cx - rx); x <= std::min(image.width - 1, cx + rx); ++x) {
                    image.mask[y * image.width + x] = 255;
                }
            }
        }
        for (size_t p = 0; p < n; ++p) {
            const double base = image.mask[p] ? 0.35 : 0.0;
            const double u = std::floor((base + rng.uniform()) * levels) / levels;
            image.map[p] = static_cast<float>(u);
        }
        images.push_back(std::move(image));
    }
    return images;
}

}  // namespace winclip::metrics::testing
