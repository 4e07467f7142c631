// Parity with the golden fixture (tests/data/fixtures/tinyclip-vit-240-golden.h5)
// under the anomalib-compat settings. The zero-shot part is fed the fixture's
// own embeddings, so it checks the method alone; the few-shot part needs
// reference embeddings, which the fixture does not hold, so it runs the CLIP
// model on the fixture's pixels when the clip module is built.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#ifdef WINCLIP_HAVE_CLIP
#include "clip/model.h"
#endif
#include "io/hdf5.h"
#include "winclip/prompts.h"
#include "winclip/settings.h"
#include "winclip/winclip.h"

namespace winclip::method {
namespace {

const std::string kGolden = std::string(WINCLIP_TEST_DATA) + "/fixtures/tinyclip-vit-240-golden.h5";
constexpr int kGrid = 15;
constexpr int kImageSize = 240;

// Tolerances of the parity requirement: embeddings and prototypes relative
// (max |a - b| / max |b|), scores and maps absolute.
constexpr double kRelTol = 1e-4;
constexpr double kAbsTol = 1e-4;

torch::Tensor read(const io::H5File& f, const std::string& name) {
    return to_tensor(f.read_float(name));
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
    EXPECT_EQ(a.sizes(), b.sizes());
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
    return max_abs_diff(a, b) / b.to(torch::kFloat64).abs().max().item<double>();
}

// Prints a measured deviation so that the test log records the margin, then
// returns it for the assertion.
double measured(const std::string& what, double value) {
    std::printf("[ measured ] %s: %.3g\n", what.c_str(), value);
    return value;
}

class GoldenParity : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { file_ = new io::H5File(kGolden, io::H5File::Mode::kRead); }
    static void TearDownTestSuite() {
        delete file_;
        file_ = nullptr;
    }
    const io::H5File& golden() const { return *file_; }

    Settings settings() const { return preset("anomalib-compat"); }
    WindowLayout layout() const {
        const Settings s = settings();
        return WindowLayout::make(kGrid, s.window_sizes, s.window_stride);
    }
    torch::Tensor golden_prototypes() const {
        return build_prototypes(read(golden(), "text/normal_embeddings"),
                                read(golden(), "text/anomalous_embeddings"),
                                settings().normalize_prompts);
    }

    static io::H5File* file_;
};
io::H5File* GoldenParity::file_ = nullptr;

TEST_F(GoldenParity, AnomalibCompatPromptsMatchStringsAndOrder) {
    const PromptSet set = load_prompt_set(settings().prompt_set);
    const PromptEnsemble e = expand_prompts(set, "bottle");
    EXPECT_EQ(e.normal, golden().read_strings("text/normal_prompts"));
    EXPECT_EQ(e.anomalous, golden().read_strings("text/anomalous_prompts"));
}

TEST_F(GoldenParity, WindowMasksMatchExactly) {
    for (int k : {2, 3}) {
        const std::string name = "images/window_masks_" + std::to_string(k);
        const Int64Array g = golden().read_int64(name);
        const torch::Tensor m = window_masks(kGrid, k, 1).contiguous();
        ASSERT_EQ(std::vector<int64_t>(m.sizes().begin(), m.sizes().end()), g.shape) << name;
        EXPECT_TRUE(std::equal(g.values.begin(), g.values.end(), m.data_ptr<int64_t>())) << name;
    }
}

TEST_F(GoldenParity, RawPrototypesMatch) {
    EXPECT_LE(measured("prototypes max rel diff",
                       max_rel_diff(golden_prototypes(), read(golden(), "text/prototypes"))),
              kRelTol);
}

TEST_F(GoldenParity, ZeroShotScoresMapsAndUpsamplingMatch) {
    const torch::Tensor image = read(golden(), "images/image_embeddings");
    const std::vector<torch::Tensor> windows = {read(golden(), "images/window_embeddings_2"),
                                                read(golden(), "images/window_embeddings_3")};
    const ZeroShotResult r = zero_shot(golden_prototypes(), image, windows, layout(), settings());

    EXPECT_LE(measured("zero-shot image_scores max abs diff",
                       max_abs_diff(r.image_scores, read(golden(), "zero_shot/image_scores"))),
              kAbsTol);
    EXPECT_LE(measured("zero-shot grid_maps max abs diff",
                       max_abs_diff(r.grid_maps, read(golden(), "zero_shot/grid_maps"))),
              kAbsTol);

    const torch::Tensor expected_maps = read(golden(), "zero_shot/anomaly_maps");
    double worst = 0;
    for (int64_t i = 0; i < r.grid_maps.size(0); ++i) {
        const FloatArray up = upsample_to_input(to_array(r.grid_maps[i]), kImageSize);
        worst = std::max(worst, max_abs_diff(to_tensor(up), expected_maps[i]));
    }
    EXPECT_LE(measured("zero-shot anomaly_maps max abs diff", worst), kAbsTol);
}

// The fixture's own grid maps, upsampled here, reproduce its anomaly maps:
// isolates the bilinear upsampling from the scoring.
TEST_F(GoldenParity, UpsamplingOfGoldenGridMapsMatches) {
    const torch::Tensor grids = read(golden(), "few_shot_k2/anomaly_maps");
    const FloatArray vision = golden().read_float("few_shot_k2/vision_grid_maps");
    const torch::Tensor zero = read(golden(), "zero_shot/grid_maps");
    const torch::Tensor fused = (zero + to_tensor(vision)) / 2;
    for (int64_t i = 0; i < fused.size(0); ++i) {
        const FloatArray up = upsample_to_input(to_array(fused[i]), kImageSize);
        EXPECT_LE(max_abs_diff(to_tensor(up), grids[i]), kAbsTol) << "image " << i;
    }
}

#ifdef WINCLIP_HAVE_CLIP
// WinCLIP+ end to end from the fixture's pixels: the demo checkpoint embeds
// the test images and the k = 1, 2, 3 references, then Eqs. (4)-(6) must give
// the fixture's vision maps, image scores and upsampled maps. The text side
// uses the fixture's prompt embeddings (text parity is the clip module's test).
TEST_F(GoldenParity, FewShotFromPixelsMatches) {
    torch::NoGradGuard no_grad;
    const std::string root = WINCLIP_REPO_ROOT;
    const clip::ClipModel model =
        clip::ClipModel::load(root + "/models/demo/tinyclip-vit-240.safetensors",
                              root + "/models/demo/tinyclip-vit-240.json");
    const WindowLayout lay = layout();
    const clip::VisionOutput test = model.encode_image(read(golden(), "images/pixels"), lay.masks);
    // Precondition: the forward pass itself reproduces the fixture's embeddings.
    ASSERT_LE(measured("test window_embeddings_2 max rel diff",
                       max_rel_diff(test.window_embeddings.at(0),
                                    read(golden(), "images/window_embeddings_2"))),
              kRelTol);
    ASSERT_LE(max_rel_diff(test.patch_tokens, read(golden(), "images/patch_tokens")), kRelTol);

    const ZeroShotResult zero = zero_shot(golden_prototypes(), test.image_embeddings,
                                          test.window_embeddings, lay, settings());
    for (int k : {1, 2, 3}) {
        const std::string group = "few_shot_k" + std::to_string(k);
        const clip::VisionOutput refs =
            model.encode_image(read(golden(), group + "/reference_pixels"), lay.masks);
        const FewShotMemory memory = build_memory(refs.patch_tokens, refs.window_embeddings);
        ASSERT_EQ(memory.patch_tokens.size(0), k * kGrid * kGrid);
        const FewShotResult r =
            few_shot(zero, memory, test.patch_tokens, test.window_embeddings, lay, settings());

        EXPECT_LE(
            measured(group + " vision_grid_maps max abs diff",
                     max_abs_diff(r.vision_grid_maps, read(golden(), group + "/vision_grid_maps"))),
            kAbsTol);
        EXPECT_LE(measured(group + " image_scores max abs diff",
                           max_abs_diff(r.image_scores, read(golden(), group + "/image_scores"))),
                  kAbsTol);
        const torch::Tensor expected_maps = read(golden(), group + "/anomaly_maps");
        double worst = 0;
        for (int64_t i = 0; i < r.grid_maps.size(0); ++i) {
            const FloatArray up = upsample_to_input(to_array(r.grid_maps[i]), kImageSize);
            worst = std::max(worst, max_abs_diff(to_tensor(up), expected_maps[i]));
        }
        EXPECT_LE(measured(group + " anomaly_maps max abs diff", worst), kAbsTol);

        // Black corners: 2x2 windows that match a reference window exactly
        // score 0 (after the clamp) and, with eps = 0, zero their patches.
        const torch::Tensor w2 =
            association_scores(test.window_embeddings.at(0), memory.windows.at(0));
        const double zero_windows = w2.eq(0).sum().item<double>() / static_cast<double>(w2.size(0));
        measured(group + " 2x2 windows scoring exactly 0 per image", zero_windows);
    }
}
#endif

}  // namespace
}  // namespace winclip::method
