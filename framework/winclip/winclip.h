// The tensor side of WinCLIP and WinCLIP+ (paper, section 4): text prototypes,
// window masks, harmonic aggregation, zero-shot scoring with multi-scale
// fusion, reference memories and the association scores of Eqs. (4)-(6).
// Everything here works on embeddings; the CLIP forward pass lives in clip/.
// All tensors are CPU float32 unless stated; shapes use N test images, k
// references, a g x g patch grid, D the joint embedding width and W the vision
// transformer width.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "core/array.h"
#include "winclip/pipeline.h"

namespace winclip::method {

// ---- conversion between core Arrays and tensors ---------------------------

// Copies into a new contiguous float32 tensor of the same shape.
torch::Tensor to_tensor(const FloatArray& a);
// Copies any float tensor (made contiguous, converted to float32) into an Array.
FloatArray to_array(const torch::Tensor& t);

// ---- text prototypes (section 4.1) ----------------------------------------

// normal_embeddings [Pn, D], anomalous_embeddings [Pa, D]: encode_text outputs
// (projected, not normalised). Returns [2, D] float32, row 0 normal, row 1
// anomalous. normalize_prompts = false: the plain mean of the raw embeddings
// (the public reference). normalize_prompts = true: each prompt embedding is
// L2-normalised, averaged, and the mean renormalised to unit length (CLIP's
// zero-shot classifier recipe). Scores use cosine similarity, so the final
// renormalisation changes no score; what matters is normalising before the mean.
torch::Tensor build_prototypes(const torch::Tensor& normal_embeddings,
                               const torch::Tensor& anomalous_embeddings, bool normalize_prompts);

// ---- windows (section 4.2) ------------------------------------------------

// Number of k x k windows with stride s along one side of a g-wide grid.
int window_count_1d(int grid, int kernel, int stride);

// [kernel * kernel, n_windows] int64. Column w lists the patch indices
// (row-major on the g x g grid) that window w covers, in row-major order inside
// the window; windows are ordered row-major by their top-left patch. Windows
// that would cross the grid's edge are not made, so with a stride that does
// not divide g - kernel the last rows/columns are covered by fewer windows, or
// none. ConfigError if kernel or stride < 1 or kernel > grid.
torch::Tensor window_masks(int grid, int kernel, int stride);

// The masks of every window scale of one setting, built once per grid.
struct WindowLayout {
    int grid = 0;                      // g
    std::vector<int> kernels;          // window sizes in patches, e.g. {2, 3}
    int stride = 1;                    // in patches
    std::vector<torch::Tensor> masks;  // per kernel, as window_masks()

    static WindowLayout make(int grid, const std::vector<int>& kernels, int stride);
    int64_t windows(size_t scale) const { return masks.at(scale).size(1); }
};

// ---- aggregation ------------------------------------------------------------

// Harmonic mean over `dim` of values + eps: count / sum(1 / (v + eps)). With
// eps = 0 a zero entry makes the mean 0 (1/0 = inf), as in the reference.
torch::Tensor harmonic_mean(const torch::Tensor& values, int64_t dim, double eps);

// Spreads window scores over patches (Eq. 3): for each patch the harmonic mean
// of (score + eps) over the windows covering it, count / sum(1 / (score + eps)).
// With eps = 0 a patch covered by a window scoring exactly 0 gets 0; a patch
// covered by no window gets 0. window_scores [N, n_windows] (>= 0), masks as
// window_masks(grid, ...). Returns [N, grid, grid] in window_scores' dtype.
torch::Tensor harmonic_aggregation(const torch::Tensor& window_scores, const torch::Tensor& masks,
                                   int grid, double eps);

// ---- zero-shot: WinCLIP (sections 4.1, 4.2) -------------------------------

// Anomalous-class probability of Eq. (1) with the two prototypes:
// softmax(cos(x, prototypes) / temperature)[1]. embeddings [..., D],
// prototypes [2, D]. Returns [...].
torch::Tensor anomaly_probability(const torch::Tensor& embeddings, const torch::Tensor& prototypes,
                                  double temperature);

struct ZeroShotResult {
    torch::Tensor image_scores;              // [N] class-token anomalous probability (ascore_0)
    torch::Tensor grid_maps;                 // [N, g, g] fused map
    std::vector<torch::Tensor> window_maps;  // per window scale [N, g, g], before fusion
};

// prototypes [2, D]; image_embeddings [N, D]; window_embeddings per scale of
// `layout` [N, n_windows, D]. The fused map is the harmonic mean (with
// settings.harmonic_eps) over {image score broadcast to the grid, if
// settings.image_scale_in_fusion} and each window scale's aggregated map.
ZeroShotResult zero_shot(const torch::Tensor& prototypes, const torch::Tensor& image_embeddings,
                         const std::vector<torch::Tensor>& window_embeddings,
                         const WindowLayout& layout, const Settings& settings);

// ---- few-shot: WinCLIP+ (section 4.3) ---------------------------------------

// Reference memories R^P and R^W per scale: every position of every reference
// image, rows L2-normalised.
struct FewShotMemory {
    int64_t shots = 0;                   // k
    torch::Tensor patch_tokens;          // [k * g * g, W]
    std::vector<torch::Tensor> windows;  // per scale [k * n_windows, D]
};

// reference_patch_tokens [k, g*g, W]; reference_window_embeddings per scale
// [k, n_windows, D]. ConfigError on empty or inconsistent shapes.
FewShotMemory build_memory(const torch::Tensor& reference_patch_tokens,
                           const std::vector<torch::Tensor>& reference_window_embeddings);

// Eq. (4): min over the memory of (1 - cos(q, r)) / 2, clamped at 0 because
// 1 - cos can round below 0. queries [N, M, C], memory [R, C] with unit rows
// (as build_memory makes them). Returns [N, M].
torch::Tensor association_scores(const torch::Tensor& queries, const torch::Tensor& memory);

struct FewShotResult {
    torch::Tensor image_scores;      // [N] Eq. (6): (ascore_0 + max of the vision map) / 2
    torch::Tensor grid_maps;         // [N, g, g] (zero-shot map + vision map) / 2
    torch::Tensor vision_grid_maps;  // [N, g, g] Eq. (5): mean of patch and window-scale maps
};

// zero: the zero-shot result of the same test images; patch_tokens
// [N, g*g, W]; window_embeddings per scale [N, n_windows, D].
FewShotResult few_shot(const ZeroShotResult& zero, const FewShotMemory& memory,
                       const torch::Tensor& patch_tokens,
                       const std::vector<torch::Tensor>& window_embeddings,
                       const WindowLayout& layout, const Settings& settings);

}  // namespace winclip::method
