// CLIP (OpenCLIP's ViT variant) in LibTorch: a text tower and a vision tower
// whose forward pass embeds whole images and chosen token subsets (WinCLIP's
// windows) in one call. Inference only; weights are plain tensors.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "clip/checkpoint.h"
#include "clip/model_config.h"

namespace winclip::clip {

// What the vision tower returns for a batch of B images.
struct VisionOutput {
    torch::Tensor image_embeddings;  // [B, D] float32: projected class token
    torch::Tensor patch_tokens;  // [B, G*G, width] float32: last layer after ln_post, not projected
    // One per window scale, in the order given: [B, n_windows, D] float32, the
    // class token plus only the window's patch tokens through ln_pre, the
    // transformer, ln_post and the projection.
    std::vector<torch::Tensor> window_embeddings;
};

class ClipModel {
  public:
    // Reads the model config and the checkpoint (see checkpoint.h), then
    // copies the tensors into the model in float32. Throws ModelError naming
    // each missing, unexpected or misshapen tensor with both shapes.
    static ClipModel load(const std::string& checkpoint_path, const std::string& model_config_path);

    // From an already loaded state dict; `origin` names it in messages.
    ClipModel(const ModelConfig& config, const StateDict& state, const std::string& origin);

    // Random weights (normal, std 0.02; LayerNorm gains near 1) from a fixed
    // seed: for benchmarks and tests of the architecture, never for scores.
    static ClipModel random(const ModelConfig& config, uint64_t seed = 0);

    ~ClipModel();
    ClipModel(ClipModel&&) noexcept;
    ClipModel& operator=(ClipModel&&) noexcept;

    const ModelConfig& config() const;
    // The stored logit scale (log of the inverse temperature), e.g. log(100).
    float logit_scale() const;

    // Moves every weight to `device` (CPU or CUDA); the forward passes then
    // run there. encode_text and encode_image accept inputs on any device,
    // move them to the model's, and return CPU tensors. ConfigError naming the
    // device when LibTorch cannot use it (e.g. CUDA in a CPU-only build).
    void to(const torch::Device& device);
    torch::Device device() const;

    // Matrix products run in this dtype: torch::kFloat (default) or
    // torch::kBFloat16 (about twice as fast on CPUs with avx512_bf16, less
    // accurate). Attention, LayerNorm and the residual stream stay float32.
    void set_compute_dtype(torch::ScalarType dtype);
    torch::ScalarType compute_dtype() const;

    // The checkpoint's tensors in OpenCLIP names, sorted (what state_dict_sha256
    // hashes); the float32 weights as loaded.
    std::vector<std::pair<std::string, torch::Tensor>> named_tensors() const;
    // state_dict_sha256 of the loaded weights: equal for .bin and .safetensors
    // of the same weights. Computed once on first use.
    std::string weights_sha256() const;

    // ids: [N, context_length] int64 token ids (Tokenizer::tokenize). Returns
    // [N, D] float32 on the CPU, projected, not normalised. With `truncate`,
    // the batch is run only up to its longest prompt's end token: causal attention makes
    // later positions irrelevant to the pooled token, so the result equals
    // the full-length one up to rounding.
    torch::Tensor encode_text(const torch::Tensor& ids, bool truncate = true) const;

    // pixels: [B, 3, S, S] float32, CLIP-normalised. `windows`: per scale an
    // integer tensor [k*k, n_windows]; column w lists the patch indices
    // (row-major on the G x G grid) window w covers. All images and all their
    // windows run through the transformer as one packed batch. Returns CPU
    // tensors.
    VisionOutput encode_image(const torch::Tensor& pixels,
                              const std::vector<torch::Tensor>& windows = {}) const;

  private:
    struct Impl;
    explicit ClipModel(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// FLOPs (multiply-adds counted as 2) of one encode_image call for one image
// with the given window sizes (stride-1 windows over the grid): the linear
// layers and patch embedding, and attention's two products.
struct VisionFlops {
    int64_t tokens = 0;    // rows of the packed token matrix
    double linear = 0;     // qkv, out-proj, MLP, patch embedding, projections
    double attention = 0;  // q k^T and p v
    double total() const { return linear + attention; }
};
VisionFlops vision_flops(const ModelConfig& config, const std::vector<int>& window_sizes);

}  // namespace winclip::clip
