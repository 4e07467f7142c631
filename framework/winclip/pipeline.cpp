#include "winclip/pipeline.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>

#include "clip/model.h"
#include "clip/preprocess.h"
#include "clip/tokenizer.h"
#include "core/context.h"
#include "core/error.h"
#include "core/log.h"
#include "core/sha256.h"
#include "io/image.h"
#include "winclip/prompts.h"
#include "winclip/settings.h"
#include "winclip/winclip.h"

namespace winclip::method {
namespace {

// Version of what an image embedding unit holds; bump when its meaning changes.
constexpr int kEmbeddingFormat = 1;
// Images per forward pass: bounds memory (ViT-B-16-plus-240 needs about
// 0.5 GB of activations per image with its 365 windows).
constexpr size_t kImageBatch = 4;

// weights_sha256 of the bundled demo checkpoint (models/demo/, random weights),
// so that it is flagged wherever a user copies it.
constexpr const char* kDemoWeightsSha256 =
    "c2ac3c8fbd24c318cde986041fbe25234f231a96e4ad8293ea241651ffe132a3";

std::atomic<int64_t> g_image_passes{0};
std::atomic<int64_t> g_text_passes{0};

// One loaded model per (checkpoint, config, device) in the process: every
// Pipeline of a grid (one per switch setting) shares it.
std::shared_ptr<clip::ClipModel> shared_model(const BackboneSpec& backbone,
                                              const std::string& device) {
    static std::mutex mutex;
    static std::map<std::string, std::weak_ptr<clip::ClipModel>> models;
    const std::string key = backbone.checkpoint + "\n" + backbone.model_config + "\n" + device;
    std::lock_guard<std::mutex> lock(mutex);
    if (auto model = models[key].lock()) return model;
    log::info("clip", "loading {} (config {}) onto device {} (requested {}, node-local rank {})",
              backbone.checkpoint, backbone.model_config, device, backbone.device,
              node_local_rank());
    auto model = std::make_shared<clip::ClipModel>(
        clip::ClipModel::load(backbone.checkpoint, backbone.model_config));
    if (device != "cpu") model->to(torch::Device(device));
    models[key] = model;
    return model;
}

// A non-negative integer, or -1.
int parse_index(const std::string& s) {
    if (s.empty() || s.size() > 6 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return -1;
    }
    return std::stoi(s);
}

// LibTorch starts with one intra-op thread here; use the cores this process
// may run on (under mpirun with core binding, one per rank). WINCLIP_THREADS
// overrides.
void configure_threads() {
    static std::once_flag once;
    std::call_once(once, [] {
        int threads = available_cores();
        if (const char* env = std::getenv("WINCLIP_THREADS")) {
            const int requested = std::atoi(env);
            if (requested <= 0)
                throw ConfigError(std::string("WINCLIP_THREADS must be a positive integer, got '") +
                                  env + "'");
            threads = requested;
        }
        torch::set_num_threads(threads);
        log::info("clip", "LibTorch {} with {} intra-op CPU thread(s)", TORCH_VERSION, threads);
    });
}

}  // namespace

std::string choose_device(const std::string& request, bool cuda_available, int device_count,
                          int local_rank) {
    const std::string where = "device '" + request + "'";
    if (request == "cpu") return "cpu";
    const bool has_cuda = cuda_available && device_count > 0;
    if (request == "auto" || request == "cuda") {
        if (!has_cuda) {
            if (request == "auto") return "cpu";
            throw ConfigError(where +
                              " asks for CUDA, but this LibTorch has no CUDA device "
                              "(use auto or cpu)");
        }
        // One GPU per rank of the node, round robin when ranks outnumber GPUs.
        return "cuda:" + std::to_string(std::max(local_rank, 0) % device_count);
    }
    if (request.rfind("cuda:", 0) == 0) {
        const int index = parse_index(request.substr(5));
        if (index < 0) {
            throw ConfigError(where + " is malformed: expected cuda:N with N a device index");
        }
        if (!has_cuda) {
            throw ConfigError(where +
                              " asks for CUDA, but this LibTorch has no CUDA device "
                              "(use auto or cpu)");
        }
        if (index >= device_count) {
            throw ConfigError(where + " does not exist: this LibTorch sees " +
                              std::to_string(device_count) + " CUDA device(s)");
        }
        return "cuda:" + std::to_string(index);
    }
    throw ConfigError(where + " is not one of auto, cpu, cuda, cuda:N");
}

int node_local_rank() {
    for (const char* name :
         {"WINCLIP_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
        const char* value = std::getenv(name);
        if (!value) continue;
        const int rank = parse_index(value);
        if (rank >= 0) return rank;
    }
    return 0;
}

std::string device_for_this_process(const std::string& request) {
    const bool cuda = torch::cuda::is_available();
    return choose_device(request, cuda, cuda ? static_cast<int>(torch::cuda::device_count()) : 0,
                         node_local_rank());
}

struct Pipeline::Impl {
    BackboneSpec backbone;
    Settings settings;
    std::shared_ptr<clip::ClipModel> model;
    clip::Tokenizer tokenizer;
    PromptSet prompts;
    WindowLayout layout;
    std::string image_key;
    bool random_weights = false;

    // The part of every key that identifies the weights and architecture.
    nlohmann::json model_identity() const {
        return {{"weights_sha256", model->weights_sha256()},
                {"model_config", model->config().to_json()}};
    }
};

Pipeline::Pipeline(const BackboneSpec& backbone, const Settings& settings)
    : impl_(std::make_unique<Impl>()) {
    validate_settings(settings, "settings of backbone " + backbone.name);
    configure_threads();
    impl_->backbone = backbone;
    impl_->settings = settings;
    const std::string device = device_for_this_process(backbone.device);
    impl_->model = shared_model(backbone, device);
    impl_->prompts = load_prompt_set(settings.prompt_set);
    const auto& vision = impl_->model->config().vision;
    impl_->layout = WindowLayout::make(vision.grid_size(), settings.window_sizes,
                                       settings.window_stride);
    impl_->random_weights = backbone.random_weights ||
                            impl_->model->weights_sha256() == kDemoWeightsSha256;
    if (impl_->random_weights) {
        log::warn("clip", "backbone {} has RANDOM weights: its scores are meaningless",
                  backbone.name);
    }
}

Pipeline::~Pipeline() = default;
Pipeline::Pipeline(Pipeline&&) noexcept = default;

const Settings& Pipeline::settings() const { return impl_->settings; }
bool Pipeline::random_weights() const { return impl_->random_weights; }
int Pipeline::grid_size() const { return impl_->model->config().vision.grid_size(); }
int Pipeline::image_size() const { return impl_->model->config().vision.image_size; }
double Pipeline::image_gflops() const {
    return clip::vision_flops(impl_->model->config(), impl_->settings.window_sizes).total() / 1e9;
}
int64_t Pipeline::image_forward_passes() { return g_image_passes.load(); }
int64_t Pipeline::text_forward_passes() { return g_text_passes.load(); }

std::string Pipeline::image_embedding_key() const {
    if (impl_->image_key.empty()) {
        nlohmann::json key = impl_->model_identity();
        key["format"] = kEmbeddingFormat;
        key["preprocess"] =
            "openclip-eval: shorter side to S, Pillow bicubic, centre crop S, RGB, CLIP mean/std";
        key["window_sizes"] = impl_->settings.window_sizes;
        key["window_stride"] = impl_->settings.window_stride;
        key["patch_tokens"] = "last layer, after ln_post, not projected";
        key["compute_dtype"] = "float32";
        impl_->image_key = sha256_hex(key.dump());
    }
    return impl_->image_key;
}

std::string Pipeline::text_key(const std::string& class_name) const {
    const PromptEnsemble ensemble = expand_prompts(impl_->prompts, class_name);
    nlohmann::json key = impl_->model_identity();
    key["format"] = kEmbeddingFormat;
    key["normal_prompts"] = ensemble.normal;
    key["anomalous_prompts"] = ensemble.anomalous;
    key["normalize_prompts"] = impl_->settings.normalize_prompts;
    return sha256_hex(key.dump());
}

namespace {

std::vector<ImageEmbeddings> split_output(const clip::VisionOutput& out) {
    const int64_t n = out.image_embeddings.size(0);
    std::vector<ImageEmbeddings> result(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        auto& e = result[static_cast<size_t>(i)];
        e.image_embedding = to_array(out.image_embeddings[i]);
        e.patch_tokens = to_array(out.patch_tokens[i]);
        for (const auto& w : out.window_embeddings) e.window_embeddings.push_back(to_array(w[i]));
    }
    return result;
}

}  // namespace

std::vector<ImageEmbeddings> Pipeline::embed_pixels(const FloatArray& pixels) {
    const int s = image_size();
    if (pixels.shape.size() != 4 || pixels.shape[1] != 3 || pixels.shape[2] != s ||
        pixels.shape[3] != s) {
        throw ConfigError("pixels must be [B, 3, " + std::to_string(s) + ", " +
                          std::to_string(s) + "], got " + shape_string(pixels.shape));
    }
    torch::InferenceMode guard;
    const auto out = impl_->model->encode_image(to_tensor(pixels), impl_->layout.masks);
    g_image_passes += pixels.shape[0];
    return split_output(out);
}

std::vector<ImageEmbeddings> Pipeline::embed_images(const std::vector<std::string>& paths,
                                                    std::vector<ImageGeometry>* geometry) {
    const int s = image_size();
    std::vector<ImageEmbeddings> result;
    result.reserve(paths.size());
    if (geometry) geometry->clear();
    for (size_t start = 0; start < paths.size(); start += kImageBatch) {
        const size_t end = std::min(paths.size(), start + kImageBatch);
        FloatArray batch({static_cast<int64_t>(end - start), 3, s, s});
        const size_t per_image = static_cast<size_t>(3) * s * s;
        for (size_t i = start; i < end; ++i) {
            clip::PreprocessGeometry g;
            const FloatArray pixels = clip::preprocess_file(paths[i], s, &g);
            std::copy(pixels.values.begin(), pixels.values.end(),
                      batch.values.begin() + static_cast<std::ptrdiff_t>((i - start) * per_image));
            if (geometry) {
                geometry->push_back(
                    {g.width, g.height, g.crop_x0, g.crop_y0, g.crop_x1, g.crop_y1});
            }
        }
        auto embedded = embed_pixels(batch);
        for (auto& e : embedded) result.push_back(std::move(e));
    }
    return result;
}

FloatArray Pipeline::text_prototypes(const std::string& class_name) {
    const PromptEnsemble ensemble = expand_prompts(impl_->prompts, class_name);
    const int context = impl_->model->config().text.context_length;
    torch::InferenceMode guard;
    auto encode = [&](const std::vector<std::string>& prompts) {
        const Int64Array ids = impl_->tokenizer.tokenize(prompts, context);
        const torch::Tensor t =
            torch::from_blob(const_cast<int64_t*>(ids.data()), ids.shape, torch::kInt64).clone();
        g_text_passes += static_cast<int64_t>(prompts.size());
        return impl_->model->encode_text(t, /*truncate=*/true);
    };
    const torch::Tensor prototypes = build_prototypes(encode(ensemble.normal),
                                                      encode(ensemble.anomalous),
                                                      impl_->settings.normalize_prompts);
    return to_array(prototypes);
}

namespace {

// Stacks one field of every image: [N, ...].
torch::Tensor stack_field(const std::vector<ImageEmbeddings>& images,
                          const std::function<const FloatArray&(const ImageEmbeddings&)>& field) {
    std::vector<torch::Tensor> parts;
    parts.reserve(images.size());
    for (const auto& e : images) parts.push_back(to_tensor(field(e)));
    return torch::stack(parts);
}

// Every image's embeddings must have the shapes the model and settings give
// (cached embeddings could come from elsewhere).
void check_embeddings(const std::vector<ImageEmbeddings>& images, const clip::ModelConfig& config,
                      const WindowLayout& layout, const std::string& what) {
    const int64_t d = config.embed_dim;
    const int64_t patches = static_cast<int64_t>(layout.grid) * layout.grid;
    auto expect = [&](size_t i, const char* field, const FloatArray& a,
                      const std::vector<int64_t>& shape) {
        if (a.shape != shape || static_cast<int64_t>(a.values.size()) != a.numel()) {
            throw ConfigError(what + " " + std::to_string(i) + ": " + field + " is " +
                              shape_string(a.shape) + ", expected " + shape_string(shape));
        }
    };
    for (size_t i = 0; i < images.size(); ++i) {
        const ImageEmbeddings& e = images[i];
        if (e.window_embeddings.size() != layout.kernels.size()) {
            throw ConfigError(what + " " + std::to_string(i) + " has " +
                              std::to_string(e.window_embeddings.size()) +
                              " window scales, the settings ask for " +
                              std::to_string(layout.kernels.size()));
        }
        expect(i, "image_embedding", e.image_embedding, {d});
        expect(i, "patch_tokens", e.patch_tokens, {patches, config.vision.width});
        for (size_t s = 0; s < layout.kernels.size(); ++s)
            expect(i, "window_embeddings", e.window_embeddings[s], {layout.windows(s), d});
    }
}

}  // namespace

ScoreResult Pipeline::score(const FloatArray& prototypes, const std::vector<ImageEmbeddings>& tests,
                            const std::vector<ImageEmbeddings>& references) const {
    if (tests.empty()) throw ConfigError("no test images to score");
    const size_t scales = impl_->layout.kernels.size();
    const clip::ModelConfig& config = impl_->model->config();
    check_embeddings(tests, config, impl_->layout, "test image");
    check_embeddings(references, config, impl_->layout, "reference image");
    if (prototypes.shape != std::vector<int64_t>{2, config.embed_dim}) {
        throw ConfigError("text prototypes are " + shape_string(prototypes.shape) +
                          ", expected " + shape_string({2, config.embed_dim}));
    }
    torch::InferenceMode guard;

    const torch::Tensor proto = to_tensor(prototypes);
    const torch::Tensor image_embeddings =
        stack_field(tests, [](const ImageEmbeddings& e) -> const FloatArray& {
            return e.image_embedding;
        });
    std::vector<torch::Tensor> windows;
    for (size_t s = 0; s < scales; ++s) {
        windows.push_back(stack_field(tests, [s](const ImageEmbeddings& e) -> const FloatArray& {
            return e.window_embeddings[s];
        }));
    }
    // Language-guided scores (WinCLIP, sections 4.1-4.2).
    const ZeroShotResult zero =
        zero_shot(proto, image_embeddings, windows, impl_->layout, impl_->settings);

    ScoreResult result;
    result.zero_shot_image_scores = to_array(zero.image_scores).values;
    result.zero_shot_grid_maps = to_array(zero.grid_maps);
    if (references.empty()) {
        result.image_scores = result.zero_shot_image_scores;
        result.grid_maps = result.zero_shot_grid_maps;
        return result;
    }

    // Reference association (WinCLIP+, section 4.3, Eqs. 4-6).
    const auto patch_field = [](const ImageEmbeddings& e) -> const FloatArray& {
        return e.patch_tokens;
    };
    std::vector<torch::Tensor> reference_windows;
    for (size_t s = 0; s < scales; ++s) {
        reference_windows.push_back(
            stack_field(references, [s](const ImageEmbeddings& e) -> const FloatArray& {
                return e.window_embeddings[s];
            }));
    }
    const FewShotMemory memory = build_memory(stack_field(references, patch_field), reference_windows);
    const FewShotResult few = few_shot(zero, memory, stack_field(tests, patch_field), windows,
                                       impl_->layout, impl_->settings);
    result.image_scores = to_array(few.image_scores).values;
    result.grid_maps = to_array(few.grid_maps);
    result.vision_grid_maps = to_array(few.vision_grid_maps);
    return result;
}

}  // namespace winclip::method
