#include "clip/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "clip/attention.h"
#include "clip/tokenizer.h"
#include "core/error.h"
#include "io/hdf5.h"

namespace winclip::clip {
namespace {

const std::string kGolden = std::string(WINCLIP_TEST_DATA) + "/fixtures/tinyclip-vit-240-golden.h5";
const std::string kDemo = std::string(WINCLIP_REPO_ROOT) + "/models/demo/tinyclip-vit-240";

// max |a - b| / max |b| over the whole tensor, as the fixtures define it.
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
    EXPECT_EQ(a.sizes(), b.sizes());
    return ((a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max() /
            b.to(torch::kDouble).abs().max())
        .item<double>();
}

torch::Tensor read_tensor(const io::H5File& f, const std::string& name) {
    FloatArray a = f.read_float(name);
    return torch::from_blob(a.values.data(), a.shape, torch::kFloat).clone();
}

torch::Tensor read_long_tensor(const io::H5File& f, const std::string& name) {
    Int64Array a = f.read_int64(name);
    return torch::from_blob(a.values.data(), a.shape, torch::kLong).clone();
}

torch::Tensor to_tensor(const Int64Array& a) {
    return torch::from_blob(const_cast<int64_t*>(a.values.data()), a.shape, torch::kLong).clone();
}

const ClipModel& demo_model() {
    static const ClipModel m = ClipModel::load(kDemo + ".bin", kDemo + ".json");
    return m;
}

const Tokenizer& tokenizer() {
    static const Tokenizer t;
    return t;
}

// Tolerance 1e-4 relative: the fixture was computed in float32 by PyTorch,
// with a different summation order.
TEST(ClipModel, TextEmbeddingsMatchGolden) {
    io::H5File f(kGolden, io::H5File::Mode::kRead);
    for (const char* kind : {"normal", "anomalous"}) {
        const auto prompts = f.read_strings(std::string("text/") + kind + "_prompts");
        const torch::Tensor expected = read_tensor(f, std::string("text/") + kind + "_embeddings");
        const torch::Tensor ids = to_tensor(tokenizer().tokenize(prompts, 77));
        const torch::Tensor got = demo_model().encode_text(ids);
        EXPECT_LT(relative_error(got, expected), 1e-4) << kind;
    }
}

// Running only up to the batch's longest end token equals the full 77-token
// pass (causal attention), to 1e-6 relative (rounding of reordered sums only).
TEST(ClipModel, TruncatedTextEqualsFullLength) {
    const std::vector<std::string> prompts = {"a photo of a bottle.", "a", "",
                                              "a jpeg corrupted photo of the damaged screw."};
    const torch::Tensor ids = to_tensor(tokenizer().tokenize(prompts, 77));
    const torch::Tensor truncated = demo_model().encode_text(ids, /*truncate=*/true);
    const torch::Tensor full = demo_model().encode_text(ids, /*truncate=*/false);
    EXPECT_LT(relative_error(truncated, full), 1e-6);
}

// Image, patch-token and window embeddings of the golden pixels and window
// masks, each to 1e-4 relative.
TEST(ClipModel, ImagePatchAndWindowEmbeddingsMatchGolden) {
    io::H5File f(kGolden, io::H5File::Mode::kRead);
    const torch::Tensor pixels = read_tensor(f, "images/pixels");
    const std::vector<torch::Tensor> windows = {read_long_tensor(f, "images/window_masks_2"),
                                                read_long_tensor(f, "images/window_masks_3")};
    const VisionOutput out = demo_model().encode_image(pixels, windows);
    EXPECT_LT(relative_error(out.image_embeddings, read_tensor(f, "images/image_embeddings")),
              1e-4);
    EXPECT_LT(relative_error(out.patch_tokens, read_tensor(f, "images/patch_tokens")), 1e-4);
    ASSERT_EQ(out.window_embeddings.size(), 2u);
    EXPECT_LT(
        relative_error(out.window_embeddings[0], read_tensor(f, "images/window_embeddings_2")),
        1e-4);
    EXPECT_LT(
        relative_error(out.window_embeddings[1], read_tensor(f, "images/window_embeddings_3")),
        1e-4);
}

// Packing images together must not mix them: one image alone gives the same
// result as inside the batch (1e-5 relative: only GEMM blocking differs).
TEST(ClipModel, BatchedImagesAreIndependent) {
    io::H5File f(kGolden, io::H5File::Mode::kRead);
    const torch::Tensor pixels = read_tensor(f, "images/pixels");
    const std::vector<torch::Tensor> windows = {read_long_tensor(f, "images/window_masks_3")};
    const VisionOutput batch = demo_model().encode_image(pixels, windows);
    const VisionOutput one = demo_model().encode_image(pixels.narrow(0, 3, 1), windows);
    EXPECT_LT(relative_error(one.image_embeddings, batch.image_embeddings.narrow(0, 3, 1)), 1e-5);
    EXPECT_LT(relative_error(one.window_embeddings[0], batch.window_embeddings[0].narrow(0, 3, 1)),
              1e-5);
}

TEST(ClipModel, BinAndSafetensorsGiveIdenticalWeights) {
    const ClipModel st = ClipModel::load(kDemo + ".safetensors", kDemo + ".json");
    const auto a = demo_model().named_tensors();
    const auto b = st.named_tensors();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].first, b[i].first);
        EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
    }
    EXPECT_EQ(demo_model().weights_sha256(), st.weights_sha256());
    EXPECT_EQ(demo_model().weights_sha256(), state_dict_sha256(load_state_dict(kDemo + ".bin")));
    EXPECT_EQ(demo_model().weights_sha256().size(), 64u);
}

TEST(ClipModel, LogitScaleIsExposed) {
    const StateDict s = load_state_dict(kDemo + ".bin");
    EXPECT_EQ(demo_model().logit_scale(), s.at("logit_scale").to(torch::kFloat).item<float>());
}

// A plain, unpacked OpenCLIP text tower written with ordinary tensor ops over
// the full context, for checking the packed implementation independently of
// the fixture (used for the QuickGELU path, which the fixture lacks).
torch::Tensor reference_text(const StateDict& sd_in, const ModelConfig& c,
                             const torch::Tensor& ids) {
    StateDict sd;
    for (const auto& [k, v] : sd_in) sd[k] = v.to(torch::kFloat);
    const int64_t n = ids.size(0), L = ids.size(1), w = c.text.width, H = c.text.heads;
    torch::Tensor x = sd.at("token_embedding.weight").index({ids}) + sd.at("positional_embedding");
    const torch::Tensor mask = torch::full({L, L}, -INFINITY).triu(1);
    for (int l = 0; l < c.text.layers; ++l) {
        const std::string p = "transformer.resblocks." + std::to_string(l) + ".";
        auto ln = [&](const torch::Tensor& t, const std::string& name) {
            return torch::layer_norm(t, {w}, sd.at(name + ".weight"), sd.at(name + ".bias"), 1e-5);
        };
        torch::Tensor h = ln(x, p + "ln_1");
        torch::Tensor qkv =
            h.matmul(sd.at(p + "attn.in_proj_weight").t()) + sd.at(p + "attn.in_proj_bias");
        auto heads = [&](torch::Tensor t) {
            return t.reshape({n, L, H, w / H}).permute({0, 2, 1, 3});
        };
        auto chunks = qkv.chunk(3, -1);
        torch::Tensor q = heads(chunks[0]), k = heads(chunks[1]), v = heads(chunks[2]);
        torch::Tensor att =
            torch::softmax(q.matmul(k.transpose(-1, -2)) / std::sqrt(double(w / H)) + mask, -1);
        torch::Tensor o = att.matmul(v).permute({0, 2, 1, 3}).reshape({n, L, w});
        x = x + o.matmul(sd.at(p + "attn.out_proj.weight").t()) + sd.at(p + "attn.out_proj.bias");
        h = ln(x, p + "ln_2");
        torch::Tensor m = h.matmul(sd.at(p + "mlp.c_fc.weight").t()) + sd.at(p + "mlp.c_fc.bias");
        m = c.quick_gelu ? m * torch::sigmoid(1.702 * m) : torch::gelu(m);
        x = x + m.matmul(sd.at(p + "mlp.c_proj.weight").t()) + sd.at(p + "mlp.c_proj.bias");
    }
    x = torch::layer_norm(x, {w}, sd.at("ln_final.weight"), sd.at("ln_final.bias"), 1e-5);
    const torch::Tensor pooled = x.index({torch::arange(n), ids.argmax(-1)});
    return pooled.matmul(sd.at("text_projection"));
}

// The reference agrees with the packed model on GELU (checked against the
// fixture above), and on QuickGELU, where the two activations differ visibly.
// Tolerance 1e-5 relative: both run in float32 with different summation order.
TEST(ClipModel, QuickGeluConfigMatchesReference) {
    const StateDict sd = load_state_dict(kDemo + ".bin");
    ModelConfig config = load_model_config(kDemo + ".json");
    const torch::Tensor ids = to_tensor(tokenizer().tokenize(
        {"a photo of a flawless bottle.", "a close-up photo of a damaged screw."}, 77));
    torch::NoGradGuard no_grad;
    const torch::Tensor gelu = ClipModel(config, sd, "demo").encode_text(ids);
    EXPECT_LT(relative_error(gelu, reference_text(sd, config, ids)), 1e-5);

    config.quick_gelu = true;
    const torch::Tensor quick = ClipModel(config, sd, "demo").encode_text(ids);
    EXPECT_LT(relative_error(quick, reference_text(sd, config, ids)), 1e-5);
    EXPECT_GT(relative_error(quick, gelu), 1e-3);  // the flag really changes the model
}

TEST(ClipModel, BadInputsAreTypedErrors) {
    EXPECT_THROW(demo_model().encode_image(torch::zeros({1, 3, 224, 224})), ModelError);
    EXPECT_THROW(demo_model().encode_text(torch::zeros({1, 76}, torch::kLong)), ModelError);
    EXPECT_THROW(demo_model().encode_text(torch::full({1, 77}, 49408, torch::kLong)), ModelError);
    EXPECT_THROW(demo_model().encode_image(torch::zeros({1, 3, 240, 240}),
                                           {torch::full({4, 2}, 225, torch::kLong)}),
                 ConfigError);
}

// The operator-based attention (the path CUDA takes) against the CPU kernel,
// on packed groups like encode_image's: full images, windows, causal text.
// Tolerance 1e-5 relative: the same arithmetic in another summation order.
TEST(PackedAttention, OperatorPathMatchesCpuKernel) {
    at::Generator gen = at::detail::createCPUGenerator(7);
    const int64_t heads = 4, width = 32;
    // Rows 34, 35, 96 and 97 belong to no group.
    const std::vector<detail::SequenceGroup> groups = {{0, 2, 17}, {36, 6, 5}, {66, 3, 10}};
    const torch::Tensor qkv = torch::randn({98, 3 * width}, gen);
    for (bool causal : {false, true}) {
        const torch::Tensor kernel = detail::packed_attention(qkv, groups, heads, causal);
        const torch::Tensor ops = detail::packed_attention_ops(qkv, groups, heads, causal);
        EXPECT_LT(relative_error(ops, kernel), 1e-5) << "causal " << causal;
        // Rows no group covers stay zero in both (tolerance 0).
        for (int64_t row : {34, 35, 96, 97}) {
            EXPECT_EQ(ops[row].abs().max().item<float>(), 0.0f) << row;
            EXPECT_EQ(kernel[row].abs().max().item<float>(), 0.0f) << row;
        }
    }
}

// Moving the model to the CPU it is on changes nothing (tolerance 0), and a
// device this LibTorch cannot use is a ConfigError naming it.
TEST(ClipModel, ToDeviceKeepsResultsAndRejectsUnavailableDevices) {
    ClipModel m = ClipModel::load(kDemo + ".safetensors", kDemo + ".json");
    io::H5File f(kGolden, io::H5File::Mode::kRead);
    const torch::Tensor pixels = read_tensor(f, "images/pixels").narrow(0, 0, 1);
    const torch::Tensor windows = read_long_tensor(f, "images/window_masks_2");
    const VisionOutput before = m.encode_image(pixels, {windows});
    m.to(torch::Device(torch::kCPU));
    EXPECT_TRUE(m.device().is_cpu());
    const VisionOutput after = m.encode_image(pixels, {windows});
    EXPECT_TRUE(torch::equal(before.image_embeddings, after.image_embeddings));
    EXPECT_TRUE(torch::equal(before.window_embeddings[0], after.window_embeddings[0]));
    EXPECT_TRUE(after.image_embeddings.is_cpu());
    if (!torch::cuda::is_available()) {
        try {
            m.to(torch::Device("cuda:0"));
            FAIL() << "expected ConfigError";
        } catch (const ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
        }
        EXPECT_TRUE(m.device().is_cpu());  // unchanged after the refusal
    }
}

// bfloat16 products: same shapes, close to float32 (2e-2 relative: bfloat16
// keeps 8 significant bits).
TEST(ClipModel, BFloat16ComputeIsClose) {
    ClipModel m = ClipModel::load(kDemo + ".safetensors", kDemo + ".json");
    const std::string hash = m.weights_sha256();
    io::H5File f(kGolden, io::H5File::Mode::kRead);
    const torch::Tensor pixels = read_tensor(f, "images/pixels").narrow(0, 0, 2);
    const torch::Tensor windows = read_long_tensor(f, "images/window_masks_2");
    const VisionOutput ref = m.encode_image(pixels, {windows});
    m.set_compute_dtype(torch::kBFloat16);
    const VisionOutput bf = m.encode_image(pixels, {windows});
    EXPECT_LT(relative_error(bf.image_embeddings, ref.image_embeddings), 2e-2);
    EXPECT_LT(relative_error(bf.window_embeddings[0], ref.window_embeddings[0]), 2e-2);
    EXPECT_EQ(m.weights_sha256(), hash);  // the stored weights stay float32
}

TEST(VisionFlops, CountsTokensOfViTB16Plus240) {
    const ModelConfig c = load_model_config(std::string(WINCLIP_REPO_ROOT) +
                                            "/configs/backbones/ViT-B-16-plus-240.json");
    const VisionFlops f = vision_flops(c, {2, 3});
    EXPECT_EQ(f.tokens, 2896);  // 226 + 196 * 5 + 169 * 10
    // 24 w^2 per token and layer for the linear layers: 669.6 GFLOP, plus the
    // patch embedding and projections (exact integers; 1e-9 relative).
    const double blocks = 2896.0 * 12 * 24 * 896.0 * 896.0;
    const double extra = 225.0 * 2 * 768 * 896 + 366.0 * 2 * 896 * 640;
    EXPECT_NEAR(f.linear, blocks + extra, 1e-9 * f.linear);
}

}  // namespace
}  // namespace winclip::clip
