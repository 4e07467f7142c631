// WinCLIP / WinCLIP+ scoring on embeddings (paper, section 4). See winclip.h.
#include "winclip/winclip.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

#include "core/error.h"
#include "winclip/settings.h"

namespace winclip::method {
namespace {

namespace F = torch::nn::functional;

std::string shape_of(const torch::Tensor& t) {
    return shape_string(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()));
}

void require(bool ok, const std::string& message) {
    if (!ok) throw ConfigError(message);
}

void require_float(const torch::Tensor& t, const char* name) {
    require(t.defined() && t.is_floating_point(),
            fmt::format("{} must be a floating-point tensor", name));
}

torch::Tensor unit_rows(const torch::Tensor& t) {
    return F::normalize(t, F::NormalizeFuncOptions().p(2).dim(-1));
}

}  // namespace

// ---- conversion ---------------------------------------------------------------

torch::Tensor to_tensor(const FloatArray& a) {
    require(
        static_cast<int64_t>(a.values.size()) == a.numel(),
        fmt::format("array of shape {} holds {} values", shape_string(a.shape), a.values.size()));
    torch::Tensor t = torch::empty(a.shape, torch::kFloat32);
    if (!a.values.empty())
        std::memcpy(t.data_ptr<float>(), a.data(), a.values.size() * sizeof(float));
    return t;
}

FloatArray to_array(const torch::Tensor& t) {
    const torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    FloatArray a(std::vector<int64_t>(c.sizes().begin(), c.sizes().end()));
    if (c.numel()) std::memcpy(a.data(), c.data_ptr<float>(), c.numel() * sizeof(float));
    return a;
}

// ---- text prototypes ----------------------------------------------------------

torch::Tensor build_prototypes(const torch::Tensor& normal_embeddings,
                               const torch::Tensor& anomalous_embeddings, bool normalize_prompts) {
    require_float(normal_embeddings, "normal prompt embeddings");
    require_float(anomalous_embeddings, "anomalous prompt embeddings");
    require(normal_embeddings.dim() == 2 && anomalous_embeddings.dim() == 2 &&
                normal_embeddings.size(0) > 0 && anomalous_embeddings.size(0) > 0 &&
                normal_embeddings.size(1) == anomalous_embeddings.size(1),
            fmt::format("prompt embeddings must be [Pn, D] and [Pa, D] with P > 0, got {} and {}",
                        shape_of(normal_embeddings), shape_of(anomalous_embeddings)));
    // Compositional prompt ensemble (section 4.1): one prototype per state, the
    // average over all (state, template) prompts of that state.
    auto prototype = [&](const torch::Tensor& e) {
        const torch::Tensor x = e.to(torch::kFloat32);
        if (!normalize_prompts) return x.mean(/*dim=*/0);
        return unit_rows(unit_rows(x).mean(/*dim=*/0));
    };
    return torch::stack({prototype(normal_embeddings), prototype(anomalous_embeddings)});
}

// ---- windows ------------------------------------------------------------------

int window_count_1d(int grid, int kernel, int stride) {
    require(grid >= 1, fmt::format("window grid must be >= 1, got {}", grid));
    require(kernel >= 1, fmt::format("window size must be >= 1, got {}", kernel));
    require(stride >= 1, fmt::format("window stride must be >= 1, got {}", stride));
    require(kernel <= grid,
            fmt::format("window size {} is larger than the {}x{} patch grid", kernel, grid, grid));
    return (grid - kernel) / stride + 1;
}

torch::Tensor window_masks(int grid, int kernel, int stride) {
    const int per_side = window_count_1d(grid, kernel, stride);
    const int64_t n = static_cast<int64_t>(per_side) * per_side;
    torch::Tensor masks = torch::empty({static_cast<int64_t>(kernel) * kernel, n}, torch::kInt64);
    auto m = masks.accessor<int64_t, 2>();
    // Windows row-major by top-left patch; inside a window, patches row-major.
    for (int wr = 0; wr < per_side; ++wr) {
        for (int wc = 0; wc < per_side; ++wc) {
            const int64_t w = static_cast<int64_t>(wr) * per_side + wc;
            for (int dr = 0; dr < kernel; ++dr) {
                for (int dc = 0; dc < kernel; ++dc) {
                    const int row = wr * stride + dr, col = wc * stride + dc;
                    m[dr * kernel + dc][w] = static_cast<int64_t>(row) * grid + col;
                }
            }
        }
    }
    return masks;
}

WindowLayout WindowLayout::make(int grid, const std::vector<int>& kernels, int stride) {
    WindowLayout layout;
    layout.grid = grid;
    layout.kernels = kernels;
    layout.stride = stride;
    for (int k : kernels) layout.masks.push_back(window_masks(grid, k, stride));
    return layout;
}

// ---- aggregation --------------------------------------------------------------

torch::Tensor harmonic_mean(const torch::Tensor& values, int64_t dim, double eps) {
    // 1 / 0 = inf makes the sum inf and the mean exactly 0, which is how a zero
    // score dominates when eps = 0 (the public reference relies on the same).
    const torch::Tensor inv = (values + eps).reciprocal();
    return static_cast<double>(values.size(dim)) / inv.sum(dim);
}

torch::Tensor harmonic_aggregation(const torch::Tensor& window_scores, const torch::Tensor& masks,
                                   int grid, double eps) {
    require_float(window_scores, "window scores");
    require(masks.dim() == 2 && masks.scalar_type() == torch::kInt64,
            fmt::format("window masks must be a 2-D int64 tensor, got {}", shape_of(masks)));
    require(window_scores.dim() == 2 && window_scores.size(1) == masks.size(1),
            fmt::format("window scores must be [N, {}] to match the window masks, got {}",
                        masks.size(1), shape_of(window_scores)));
    const int64_t cells = static_cast<int64_t>(grid) * grid;
    require(masks.numel() == 0 ||
                (masks.min().item<int64_t>() >= 0 && masks.max().item<int64_t>() < cells),
            fmt::format("window masks index outside the {}x{} grid", grid, grid));

    // Harmonic averaging of windows (Eq. 3): each window's score goes to every
    // patch it covers; per patch, (number of windows) / sum(1 / score). Adding
    // with index_add keeps an inf from a zero score an inf (a dense 0/1 matrix
    // product would turn inf * 0 into NaN).
    const int64_t n = window_scores.size(0);
    const torch::Tensor inv = (window_scores + eps).reciprocal();
    torch::Tensor inv_sum = torch::zeros({n, cells}, window_scores.options());
    torch::Tensor count = torch::zeros({cells}, window_scores.options());
    const torch::Tensor ones = torch::ones({masks.size(1)}, window_scores.options());
    for (int64_t j = 0; j < masks.size(0); ++j) {
        inv_sum.index_add_(/*dim=*/1, masks[j], inv);
        count.index_add_(/*dim=*/0, masks[j], ones);
    }
    torch::Tensor out = count.unsqueeze(0) / inv_sum;
    // A patch no window covers is 0 / 0: it gets 0, as in the reference.
    out = torch::where(count.unsqueeze(0) > 0, out, torch::zeros_like(out));
    return out.reshape({n, grid, grid});
}

// ---- zero-shot ----------------------------------------------------------------

torch::Tensor anomaly_probability(const torch::Tensor& embeddings, const torch::Tensor& prototypes,
                                  double temperature) {
    require_float(embeddings, "embeddings");
    require_float(prototypes, "text prototypes");
    require(prototypes.dim() == 2 && prototypes.size(0) == 2 && embeddings.dim() >= 1 &&
                embeddings.size(-1) == prototypes.size(1),
            fmt::format("embeddings [..., D] and prototypes [2, D] disagree: {} vs {}",
                        shape_of(embeddings), shape_of(prototypes)));
    require(temperature > 0, fmt::format("temperature must be > 0, got {}", temperature));
    // Eq. (1) with the two state prototypes as the class set.
    const torch::Tensor cos = torch::matmul(unit_rows(embeddings), unit_rows(prototypes).t());
    return torch::softmax(cos / temperature, /*dim=*/-1).select(/*dim=*/-1, /*index=*/1);
}

namespace {

void check_windows(const std::vector<torch::Tensor>& window_embeddings, const WindowLayout& layout,
                   const Settings& settings, int64_t n, const char* what) {
    require(layout.kernels == settings.window_sizes && layout.stride == settings.window_stride,
            fmt::format("{}: the window layout (sizes {}, stride {}) was not built for these "
                        "settings (sizes {}, stride {})",
                        what, fmt::join(layout.kernels, ","), layout.stride,
                        fmt::join(settings.window_sizes, ","), settings.window_stride));
    require(window_embeddings.size() == layout.masks.size(),
            fmt::format("{}: {} window scales given, the settings ask for {}", what,
                        window_embeddings.size(), layout.masks.size()));
    for (size_t s = 0; s < window_embeddings.size(); ++s) {
        const torch::Tensor& w = window_embeddings[s];
        require_float(w, what);
        require(
            w.dim() == 3 && w.size(0) == n && w.size(1) == layout.windows(s),
            fmt::format("{}: {}x{} windows must be [{}, {}, D], got {}", what, layout.kernels[s],
                        layout.kernels[s], n, layout.windows(s), shape_of(w)));
    }
}

}  // namespace

ZeroShotResult zero_shot(const torch::Tensor& prototypes, const torch::Tensor& image_embeddings,
                         const std::vector<torch::Tensor>& window_embeddings,
                         const WindowLayout& layout, const Settings& settings) {
    validate_settings(settings, "zero-shot scoring");
    require_float(image_embeddings, "image embeddings");
    require(image_embeddings.dim() == 2,
            fmt::format("image embeddings must be [N, D], got {}", shape_of(image_embeddings)));
    const int64_t n = image_embeddings.size(0);
    const int g = layout.grid;
    check_windows(window_embeddings, layout, settings, n, "zero-shot window embeddings");
    require(settings.image_scale_in_fusion || !window_embeddings.empty(),
            "zero-shot fusion needs at least one scale: the image scale is off and no window "
            "sizes are set");

    ZeroShotResult r;
    // Image scale: ascore_0 of the class token (section 4.1).
    r.image_scores = anomaly_probability(image_embeddings, prototypes, settings.temperature);

    // Window scales: ascore_0 of every window embedding, spread by Eq. (3).
    std::vector<torch::Tensor> scales;
    if (settings.image_scale_in_fusion) {
        scales.push_back(r.image_scores.view({n, 1, 1}).expand({n, g, g}));
    }
    for (size_t s = 0; s < window_embeddings.size(); ++s) {
        const torch::Tensor scores =
            anomaly_probability(window_embeddings[s], prototypes, settings.temperature);
        r.window_maps.push_back(
            harmonic_aggregation(scores, layout.masks[s], g, settings.harmonic_eps));
        scales.push_back(r.window_maps.back());
    }

    // Multi-scale aggregation (section 4.2): harmonic mean over the scales.
    r.grid_maps = harmonic_mean(torch::stack(scales), /*dim=*/0, settings.harmonic_eps);
    return r;
}

// ---- few-shot -----------------------------------------------------------------

FewShotMemory build_memory(const torch::Tensor& reference_patch_tokens,
                           const std::vector<torch::Tensor>& reference_window_embeddings) {
    require_float(reference_patch_tokens, "reference patch tokens");
    require(reference_patch_tokens.dim() == 3 && reference_patch_tokens.size(0) > 0,
            fmt::format("reference patch tokens must be [k, g*g, W] with k > 0, got {}",
                        shape_of(reference_patch_tokens)));
    const int64_t k = reference_patch_tokens.size(0);
    FewShotMemory m;
    m.shots = k;
    // The memories pool every position of every reference image (section 4.3).
    m.patch_tokens = unit_rows(
        reference_patch_tokens.to(torch::kFloat32).reshape({-1, reference_patch_tokens.size(2)}));
    for (size_t s = 0; s < reference_window_embeddings.size(); ++s) {
        const torch::Tensor& w = reference_window_embeddings[s];
        require_float(w, "reference window embeddings");
        require(w.dim() == 3 && w.size(0) == k,
                fmt::format("reference window embeddings of scale {} must be [{}, n, D], got {}", s,
                            k, shape_of(w)));
        m.windows.push_back(unit_rows(w.to(torch::kFloat32).reshape({-1, w.size(2)})));
    }
    return m;
}

torch::Tensor association_scores(const torch::Tensor& queries, const torch::Tensor& memory) {
    require_float(queries, "association queries");
    require_float(memory, "reference memory");
    require(queries.dim() == 3 && memory.dim() == 2 && memory.size(0) > 0 &&
                queries.size(2) == memory.size(1),
            fmt::format("association needs queries [N, M, C] and memory [R, C], got {} and {}",
                        shape_of(queries), shape_of(memory)));
    // Reference association (Eq. 4), one test image at a time so that the
    // [M, R] similarity matrix stays small for large memories.
    const torch::Tensor q = unit_rows(queries.to(torch::kFloat32));
    const torch::Tensor mem_t = memory.to(torch::kFloat32).t();
    std::vector<torch::Tensor> rows;
    rows.reserve(q.size(0));
    for (int64_t i = 0; i < q.size(0); ++i) {
        const torch::Tensor cos = torch::matmul(q[i], mem_t);  // [M, R]
        const torch::Tensor best = std::get<0>((1.0 - cos).min(/*dim=*/1));
        rows.push_back((best / 2.0).clamp_min(0.0));
    }
    return torch::stack(rows);
}

FewShotResult few_shot(const ZeroShotResult& zero, const FewShotMemory& memory,
                       const torch::Tensor& patch_tokens,
                       const std::vector<torch::Tensor>& window_embeddings,
                       const WindowLayout& layout, const Settings& settings) {
    validate_settings(settings, "few-shot scoring");
    const int g = layout.grid;
    require_float(patch_tokens, "patch tokens");
    require(patch_tokens.dim() == 3 && patch_tokens.size(1) == static_cast<int64_t>(g) * g,
            fmt::format("patch tokens must be [N, {}, W], got {}", g * g, shape_of(patch_tokens)));
    const int64_t n = patch_tokens.size(0);
    check_windows(window_embeddings, layout, settings, n, "few-shot window embeddings");
    require(memory.windows.size() == window_embeddings.size(),
            fmt::format("the reference memory has {} window scales, the test images {}",
                        memory.windows.size(), window_embeddings.size()));
    require(zero.image_scores.defined() && zero.image_scores.size(0) == n &&
                zero.grid_maps.sizes() == torch::IntArrayRef({n, g, g}),
            fmt::format("zero-shot result does not match {} test images on a {}x{} grid", n, g, g));

    // Eq. (4) at each scale: patch tokens (R^P) and each window scale (R^W).
    std::vector<torch::Tensor> maps;
    maps.push_back(association_scores(patch_tokens, memory.patch_tokens).reshape({n, g, g}));
    for (size_t s = 0; s < window_embeddings.size(); ++s) {
        const torch::Tensor scores = association_scores(window_embeddings[s], memory.windows[s]);
        maps.push_back(harmonic_aggregation(scores, layout.masks[s], g, settings.harmonic_eps));
    }

    FewShotResult r;
    // Eq. (5): the plain mean of the scale maps.
    r.vision_grid_maps = torch::stack(maps).mean(/*dim=*/0);
    // Fusion with the language-guided map, and Eq. (6) for the image score.
    r.grid_maps = (zero.grid_maps + r.vision_grid_maps) / 2.0;
    r.image_scores = (zero.image_scores + r.vision_grid_maps.amax({-2, -1})) / 2.0;
    return r;
}

}  // namespace winclip::method
