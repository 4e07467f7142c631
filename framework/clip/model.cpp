#include "clip/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>

#include "clip/attention.h"
#include "core/array.h"
#include "core/error.h"

namespace winclip::clip {
namespace {

using detail::SequenceGroup;
using torch::Tensor;

constexpr double kLayerNormEps = 1e-5;  // OpenCLIP's LayerNorm default

std::string shape_of(const Tensor& t) { return shape_string(t.sizes().vec()); }

// One pre-LN residual attention block (OpenCLIP's ResidualAttentionBlock).
struct Block {
    Tensor ln_1_weight, ln_1_bias;
    Tensor in_proj_weight, in_proj_bias;    // [3w, w], [3w]: q | k | v
    Tensor out_proj_weight, out_proj_bias;  // [w, w], [w]
    Tensor ln_2_weight, ln_2_bias;
    Tensor c_fc_weight, c_fc_bias;      // [mlp, w], [mlp]
    Tensor c_proj_weight, c_proj_bias;  // [w, mlp], [w]
    // The four matrices above in the compute dtype (aliases when float32).
    Tensor in_proj_c, out_proj_c, c_fc_c, c_proj_c;
};

// A tensor the checkpoint must provide, with its place in the model.
struct Slot {
    std::string name;
    std::vector<int64_t> shape;
    Tensor* tensor;
};

}  // namespace

struct ClipModel::Impl {
    ModelConfig config;
    torch::ScalarType dtype = torch::kFloat;
    torch::Device device = torch::kCPU;

    // Vision tower.
    Tensor conv1_weight;       // [w, 3, p, p], no bias
    Tensor class_embedding;    // [w]
    Tensor visual_positional;  // [1 + G*G, w]
    Tensor ln_pre_weight, ln_pre_bias, ln_post_weight, ln_post_bias;
    Tensor visual_proj;  // [w, D]
    std::vector<Block> visual_blocks;

    // Text tower.
    Tensor token_embedding;  // [vocab, tw]
    Tensor text_positional;  // [context, tw]
    Tensor ln_final_weight, ln_final_bias;
    Tensor text_projection;  // [tw, D]
    Tensor logit_scale;      // []
    std::vector<Block> text_blocks;

    mutable std::mutex hash_mutex;
    mutable std::string hash;

    std::vector<Slot> slots();
    void allocate_blocks() {
        visual_blocks.assign(static_cast<size_t>(config.vision.layers), Block{});
        text_blocks.assign(static_cast<size_t>(config.text.layers), Block{});
    }
    void prepare_compute_weights();
    void run_block(Tensor& x, const Block& b, const std::vector<SequenceGroup>& groups,
                   int64_t heads, bool causal) const;
    Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) const;
    void residual_linear(Tensor& x, const Tensor& a, const Tensor& w, const Tensor& b) const;
};

// Every tensor of an OpenCLIP state dict for this config, with its shape.
std::vector<Slot> ClipModel::Impl::slots() {
    const VisionConfig& v = config.vision;
    const TextConfig& t = config.text;
    const int64_t D = config.embed_dim;
    const int64_t G = v.grid_size();
    std::vector<Slot> s;
    auto add_blocks = [&s](const std::string& prefix, std::vector<Block>& blocks, int64_t w,
                           int64_t mlp) {
        for (size_t i = 0; i < blocks.size(); ++i) {
            Block& b = blocks[i];
            const std::string p = fmt::format("{}transformer.resblocks.{}.", prefix, i);
            s.push_back({p + "ln_1.weight", {w}, &b.ln_1_weight});
            s.push_back({p + "ln_1.bias", {w}, &b.ln_1_bias});
            s.push_back({p + "attn.in_proj_weight", {3 * w, w}, &b.in_proj_weight});
            s.push_back({p + "attn.in_proj_bias", {3 * w}, &b.in_proj_bias});
            s.push_back({p + "attn.out_proj.weight", {w, w}, &b.out_proj_weight});
            s.push_back({p + "attn.out_proj.bias", {w}, &b.out_proj_bias});
            s.push_back({p + "ln_2.weight", {w}, &b.ln_2_weight});
            s.push_back({p + "ln_2.bias", {w}, &b.ln_2_bias});
            s.push_back({p + "mlp.c_fc.weight", {mlp, w}, &b.c_fc_weight});
            s.push_back({p + "mlp.c_fc.bias", {mlp}, &b.c_fc_bias});
            s.push_back({p + "mlp.c_proj.weight", {w, mlp}, &b.c_proj_weight});
            s.push_back({p + "mlp.c_proj.bias", {w}, &b.c_proj_bias});
        }
    };
    const int64_t vw = v.width;
    s.push_back({"visual.conv1.weight", {vw, 3, v.patch_size, v.patch_size}, &conv1_weight});
    s.push_back({"visual.class_embedding", {vw}, &class_embedding});
    s.push_back({"visual.positional_embedding", {1 + G * G, vw}, &visual_positional});
    s.push_back({"visual.ln_pre.weight", {vw}, &ln_pre_weight});
    s.push_back({"visual.ln_pre.bias", {vw}, &ln_pre_bias});
    add_blocks("visual.", visual_blocks, vw, v.mlp_width());
    s.push_back({"visual.ln_post.weight", {vw}, &ln_post_weight});
    s.push_back({"visual.ln_post.bias", {vw}, &ln_post_bias});
    s.push_back({"visual.proj", {vw, D}, &visual_proj});
    const int64_t tw = t.width;
    s.push_back({"token_embedding.weight", {t.vocab_size, tw}, &token_embedding});
    s.push_back({"positional_embedding", {t.context_length, tw}, &text_positional});
    add_blocks("", text_blocks, tw, t.mlp_width());
    s.push_back({"ln_final.weight", {tw}, &ln_final_weight});
    s.push_back({"ln_final.bias", {tw}, &ln_final_bias});
    s.push_back({"text_projection", {tw, D}, &text_projection});
    s.push_back({"logit_scale", {}, &logit_scale});
    return s;
}

void ClipModel::Impl::prepare_compute_weights() {
    for (auto* blocks : {&visual_blocks, &text_blocks}) {
        for (Block& b : *blocks) {
            b.in_proj_c = b.in_proj_weight.to(dtype);
            b.out_proj_c = b.out_proj_weight.to(dtype);
            b.c_fc_c = b.c_fc_weight.to(dtype);
            b.c_proj_c = b.c_proj_weight.to(dtype);
        }
    }
}

// x [T, in] float32 -> x w^T + b, [T, out] float32.
Tensor ClipModel::Impl::linear(const Tensor& x, const Tensor& w, const Tensor& b) const {
    if (dtype == torch::kFloat) return torch::addmm(b, x, w.t());
    return torch::mm(x.to(dtype), w.t()).to(torch::kFloat).add_(b);
}

// x += a w^T + b, in place: the residual add rides on the GEMM's beta = 1.
void ClipModel::Impl::residual_linear(Tensor& x, const Tensor& a, const Tensor& w,
                                      const Tensor& b) const {
    x.add_(b);
    if (dtype == torch::kFloat) {
        x.addmm_(a, w.t());
    } else {
        x.add_(torch::mm(a.to(dtype), w.t()));
    }
}

// Pre-LN block on the packed token matrix x [T, w]: every linear layer sees all
// T rows at once; attention stays within each sequence of each group.
void ClipModel::Impl::run_block(Tensor& x, const Block& b, const std::vector<SequenceGroup>& groups,
                                int64_t heads, bool causal) const {
    const int64_t w = x.size(1);
    {
        Tensor h = torch::layer_norm(x, {w}, b.ln_1_weight, b.ln_1_bias, kLayerNormEps);
        Tensor qkv = linear(h, b.in_proj_c, b.in_proj_bias);
        h = Tensor();
        Tensor a = detail::packed_attention(qkv, groups, heads, causal);
        qkv = Tensor();
        residual_linear(x, a, b.out_proj_c, b.out_proj_bias);
    }
    {
        Tensor h = torch::layer_norm(x, {w}, b.ln_2_weight, b.ln_2_bias, kLayerNormEps);
        Tensor m = linear(h, b.c_fc_c, b.c_fc_bias);
        h = Tensor();
        if (config.quick_gelu) {
            m.mul_(torch::sigmoid(m * 1.702));  // OpenAI's QuickGELU
        } else {
            torch::gelu_(m);  // exact (erf) GELU, nn.GELU's default
        }
        residual_linear(x, m, b.c_proj_c, b.c_proj_bias);
    }
}

ClipModel::ClipModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipModel::~ClipModel() = default;
ClipModel::ClipModel(ClipModel&&) noexcept = default;
ClipModel& ClipModel::operator=(ClipModel&&) noexcept = default;

ClipModel::ClipModel(const ModelConfig& config, const StateDict& state, const std::string& origin)
    : impl_(std::make_unique<Impl>()) {
    torch::NoGradGuard no_grad;
    impl_->config = config;
    impl_->allocate_blocks();
    std::vector<Slot> slots = impl_->slots();

    // Check everything first, so one message lists every problem.
    std::vector<std::string> problems;
    std::set<std::string> expected;
    for (const Slot& s : slots) {
        expected.insert(s.name);
        auto it = state.find(s.name);
        if (it == state.end()) {
            problems.push_back(
                fmt::format("missing tensor {} (model expects {})", s.name, shape_string(s.shape)));
        } else if (it->second.sizes().vec() != s.shape) {
            problems.push_back(
                fmt::format("tensor {} has shape {} in the checkpoint but the "
                            "model expects {}",
                            s.name, shape_of(it->second), shape_string(s.shape)));
        } else if (!it->second.is_floating_point()) {
            problems.push_back(fmt::format("tensor {} is {}, not floating point", s.name,
                                           c10::toString(it->second.scalar_type())));
        }
    }
    for (const auto& [name, tensor] : state) {
        if (!expected.count(name)) {
            problems.push_back(
                fmt::format("unexpected tensor {} with shape {}", name, shape_of(tensor)));
        }
    }
    if (!problems.empty()) {
        std::string message = fmt::format(
            "checkpoint {} does not match the model config {} "
            "({} problem{}):",
            origin, config.source.empty() ? "(built in)" : config.source, problems.size(),
            problems.size() == 1 ? "" : "s");
        const size_t shown = std::min<size_t>(problems.size(), 20);
        for (size_t i = 0; i < shown; ++i) message += "\n  " + problems[i];
        if (shown < problems.size())
            message += fmt::format("\n  ... and {} more", problems.size() - shown);
        throw ModelError(message);
    }
    for (Slot& s : slots) *s.tensor = state.at(s.name).to(torch::kFloat).contiguous().clone();
    impl_->prepare_compute_weights();
}

ClipModel ClipModel::load(const std::string& checkpoint_path,
                          const std::string& model_config_path) {
    const ModelConfig config = load_model_config(model_config_path);
    StateDict state = load_state_dict(checkpoint_path);
    return ClipModel(config, state, checkpoint_path);
}

ClipModel ClipModel::random(const ModelConfig& config, uint64_t seed) {
    torch::NoGradGuard no_grad;
    auto impl = std::make_unique<Impl>();
    impl->config = config;
    impl->allocate_blocks();
    at::Generator gen = at::detail::createCPUGenerator(seed);
    for (Slot& s : impl->slots()) {
        Tensor t = torch::randn(s.shape, gen, torch::TensorOptions().dtype(torch::kFloat)) * 0.02;
        const bool gain = s.name.size() > 7 &&
                          s.name.compare(s.name.size() - 7, 7, ".weight") == 0 &&
                          s.name.find("ln_") != std::string::npos;
        if (gain) t += 1.0;
        *s.tensor = t;
    }
    impl->logit_scale = torch::full({}, std::log(1.0 / 0.07));
    impl->prepare_compute_weights();
    return ClipModel(std::move(impl));
}

const ModelConfig& ClipModel::config() const { return impl_->config; }

float ClipModel::logit_scale() const { return impl_->logit_scale.item<float>(); }

void ClipModel::set_compute_dtype(torch::ScalarType dtype) {
    if (dtype != torch::kFloat && dtype != torch::kBFloat16) {
        throw ConfigError(
            fmt::format("compute dtype must be float32 or bfloat16, got {}", c10::toString(dtype)));
    }
    impl_->dtype = dtype;
    impl_->prepare_compute_weights();
}

torch::ScalarType ClipModel::compute_dtype() const { return impl_->dtype; }

void ClipModel::to(const torch::Device& device) {
    torch::NoGradGuard no_grad;
    if (device.is_cuda()) {
        const int64_t count = torch::cuda::is_available() ? torch::cuda::device_count() : 0;
        if (device.index() >= count || (!device.has_index() && count == 0)) {
            throw ConfigError(fmt::format("device {} is not available: this LibTorch sees {} CUDA "
                                          "device(s)",
                                          device.str(), count));
        }
    } else if (!device.is_cpu()) {
        throw ConfigError(fmt::format("device {} is not supported (cpu or cuda)", device.str()));
    }
    // The weights hash is taken from the CPU copy, before anything moves.
    weights_sha256();
    for (Slot& s : impl_->slots()) *s.tensor = s.tensor->to(device);
    impl_->device = device;
    impl_->prepare_compute_weights();
}

torch::Device ClipModel::device() const { return impl_->device; }

std::vector<std::pair<std::string, torch::Tensor>> ClipModel::named_tensors() const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const Slot& s : impl_->slots()) out.emplace_back(s.name, *s.tensor);
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
}

std::string ClipModel::weights_sha256() const {
    std::lock_guard<std::mutex> lock(impl_->hash_mutex);
    if (impl_->hash.empty()) {
        StateDict state;
        for (auto& [name, t] : named_tensors()) state[name] = t.to(torch::kCPU);
        impl_->hash = state_dict_sha256(state);
    }
    return impl_->hash;
}

torch::Tensor ClipModel::encode_text(const torch::Tensor& ids_in, bool truncate) const {
    torch::InferenceMode guard;
    const TextConfig& t = impl_->config.text;
    if (ids_in.dim() != 2 || ids_in.size(1) != t.context_length ||
        !c10::isIntegralType(ids_in.scalar_type(), /*includeBool=*/false)) {
        throw ModelError(fmt::format("token ids must be an integer tensor [N, {}], got {} {}",
                                     t.context_length, c10::toString(ids_in.scalar_type()),
                                     shape_of(ids_in)));
    }
    const Tensor ids = ids_in.to(impl_->device, torch::kLong).contiguous();
    const int64_t n = ids.size(0);
    const int64_t w = t.width;
    if (n == 0) return torch::empty({0, impl_->config.embed_dim});
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= t.vocab_size) {
        throw ModelError(fmt::format("token ids must lie in [0, {}), got values in [{}, {}]",
                                     t.vocab_size, lo, hi));
    }
    // OpenCLIP pools at the position of the largest id: the end token.
    const Tensor pool = ids.argmax(/*dim=*/1);
    const int64_t length = truncate ? pool.max().item<int64_t>() + 1 : t.context_length;

    Tensor x = impl_->token_embedding.index_select(0, ids.narrow(1, 0, length).reshape({-1}))
                   .view({n, length, w});
    x = (x + impl_->text_positional.narrow(0, 0, length)).reshape({n * length, w}).contiguous();
    const std::vector<SequenceGroup> groups = {{0, n, length}};
    for (const Block& b : impl_->text_blocks)
        impl_->run_block(x, b, groups, t.heads, /*causal=*/true);

    const Tensor rows = torch::arange(n, ids.options()) * length + pool;
    Tensor pooled = torch::layer_norm(x.index_select(0, rows), {w}, impl_->ln_final_weight,
                                      impl_->ln_final_bias, kLayerNormEps);
    return pooled.mm(impl_->text_projection).to(torch::kCPU);
}

VisionOutput ClipModel::encode_image(const torch::Tensor& pixels_in,
                                     const std::vector<torch::Tensor>& windows) const {
    torch::InferenceMode guard;
    const VisionConfig& v = impl_->config.vision;
    const int64_t S = v.image_size, p = v.patch_size, G = v.grid_size(), GG = G * G, w = v.width;
    if (pixels_in.dim() != 4 || pixels_in.size(1) != 3 || pixels_in.size(2) != S ||
        pixels_in.size(3) != S || !pixels_in.is_floating_point()) {
        throw ModelError(fmt::format("pixels must be a float tensor [B, 3, {}, {}], got {} {}", S,
                                     S, c10::toString(pixels_in.scalar_type()),
                                     shape_of(pixels_in)));
    }
    const Tensor pixels = pixels_in.to(impl_->device, torch::kFloat).contiguous();
    const int64_t B = pixels.size(0);

    // Patch embedding: a stride-p convolution is a product with the flattened patches.
    const Tensor patches =
        pixels.view({B, 3, G, p, G, p}).permute({0, 2, 4, 1, 3, 5}).reshape({B * GG, 3 * p * p});
    const Tensor embedded =
        patches.mm(impl_->conv1_weight.view({w, 3 * p * p}).t()).view({B, GG, w});
    const Tensor cls = (impl_->class_embedding + impl_->visual_positional[0]).view({1, 1, w});
    // [B, 1 + G*G, w]: class token then patches, positional embeddings added.
    const Tensor tokens = torch::cat(
        {cls.expand({B, 1, w}), embedded + impl_->visual_positional.narrow(0, 1, GG)}, /*dim=*/1);

    // Pack the full images and every window of every image into one token
    // matrix: a window is its image's class token plus the covered patches
    // (WinCLIP, section 4.2: window embeddings from the masked token set).
    std::vector<Tensor> parts = {tokens.reshape({B * (1 + GG), w})};
    std::vector<SequenceGroup> groups = {{0, B, 1 + GG}};
    int64_t rows = B * (1 + GG);
    for (size_t s = 0; s < windows.size(); ++s) {
        const Tensor& m = windows[s];
        if (m.dim() != 2 || m.size(0) < 1 ||
            !c10::isIntegralType(m.scalar_type(), /*includeBool=*/false)) {
            throw ConfigError(
                fmt::format("window set {} must be an integer tensor [k*k, n_windows], "
                            "got {} {}",
                            s, c10::toString(m.scalar_type()), shape_of(m)));
        }
        const Tensor idx = m.to(impl_->device, torch::kLong);
        if (idx.numel() > 0 && (idx.min().item<int64_t>() < 0 || idx.max().item<int64_t>() >= GG)) {
            throw ConfigError(
                fmt::format("window set {} lists patch indices outside [0, {})", s, GG));
        }
        const int64_t kk = idx.size(0), nw = idx.size(1);
        const Tensor seq = torch::cat({torch::zeros({1, nw}, idx.options()), idx + 1}, /*dim=*/0)
                               .t()
                               .contiguous()
                               .view({-1});  // [nw * (1 + kk)] positions in `tokens`
        parts.push_back(tokens.index_select(1, seq).reshape({B * nw * (1 + kk), w}));
        groups.push_back({rows, B * nw, 1 + kk});
        rows += B * nw * (1 + kk);
    }
    Tensor x = torch::cat(parts, /*dim=*/0);
    parts.clear();
    x = torch::layer_norm(x, {w}, impl_->ln_pre_weight, impl_->ln_pre_bias, kLayerNormEps);
    for (const Block& b : impl_->visual_blocks)
        impl_->run_block(x, b, groups, v.heads(), /*causal=*/false);

    VisionOutput out;
    {
        const Tensor full =
            torch::layer_norm(x.narrow(0, 0, B * (1 + GG)).view({B, 1 + GG, w}), {w},
                              impl_->ln_post_weight, impl_->ln_post_bias, kLayerNormEps);
        out.image_embeddings = full.select(1, 0).mm(impl_->visual_proj);
        out.patch_tokens = full.narrow(1, 1, GG).contiguous();
    }
    for (size_t s = 1; s < groups.size(); ++s) {
        const SequenceGroup& g = groups[s];
        const Tensor cls_rows =
            x.narrow(0, g.offset, g.count * g.length).view({g.count, g.length, w}).select(1, 0);
        const Tensor normed = torch::layer_norm(cls_rows, {w}, impl_->ln_post_weight,
                                                impl_->ln_post_bias, kLayerNormEps);
        out.window_embeddings.push_back(normed.mm(impl_->visual_proj).view({B, g.count / B, -1}));
    }
    if (!impl_->device.is_cpu()) {
        out.image_embeddings = out.image_embeddings.to(torch::kCPU);
        out.patch_tokens = out.patch_tokens.to(torch::kCPU);
        for (auto& e : out.window_embeddings) e = e.to(torch::kCPU);
    }
    return out;
}

VisionFlops vision_flops(const ModelConfig& config, const std::vector<int>& window_sizes) {
    const VisionConfig& v = config.vision;
    const double w = v.width, mlp = v.mlp_width(), D = config.embed_dim;
    const int64_t G = v.grid_size();
    VisionFlops f;
    std::vector<std::pair<int64_t, int64_t>> seqs = {{1, 1 + G * G}};  // (count, length)
    for (int k : window_sizes) {
        const int64_t n = (G - k + 1) * (G - k + 1);
        seqs.push_back({n, 1 + int64_t(k) * k});
    }
    int64_t pooled = 0;
    for (auto [count, length] : seqs) {
        f.tokens += count * length;
        pooled += count;
        // q k^T and p v: 2 * L^2 * w multiply-adds per layer and sequence.
        f.attention += v.layers * double(count) * 2.0 * 2.0 * double(length) * double(length) * w;
    }
    const double per_token_layer = 2.0 * (3 * w * w + w * w + 2 * w * mlp);
    f.linear = double(f.tokens) * v.layers * per_token_layer;
    f.linear += double(G * G) * 2.0 * 3.0 * v.patch_size * v.patch_size * w;  // patch embedding
    f.linear += double(pooled) * 2.0 * w * D;                                 // projections
    return f;
}

}  // namespace winclip::clip
