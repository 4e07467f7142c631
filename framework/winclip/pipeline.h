// The torch-free facade of the method, used by the experiment engine and the
// command line: decode + preprocess + CLIP forward pass for images, prompt
// ensembles for text, and WinCLIP / WinCLIP+ scoring (paper, section 4).
// Nothing here includes LibTorch, so the engine compiles fast.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/array.h"

namespace winclip::method {

// Where a model comes from.
struct BackboneSpec {
    std::string name;           // short id used in cell ids, e.g. "vit-b-16-plus-240"
    std::string checkpoint;     // OpenCLIP .bin/.pt state dict or .safetensors
    std::string model_config;   // OpenCLIP model-config JSON
    bool random_weights = false;  // demo/bench weights: every log line and table says so
    // Where the forward passes run: "auto" (the default: the CUDA device
    // node-local rank % device count when LibTorch has CUDA, else the CPU),
    // "cpu", "cuda" (as auto, but an error without CUDA) or "cuda:N". It does
    // not enter any cache key or cell id.
    std::string device = "auto";
};

// The device a rank uses, as a LibTorch device string ("cpu", "cuda:1"), from
// the request (BackboneSpec::device), whether LibTorch has CUDA, how many
// devices it sees and the rank's node-local rank. Pure logic. ConfigError
// naming the request when it is malformed, asks for CUDA that is not there,
// or names a device index >= device_count.
std::string choose_device(const std::string& request, bool cuda_available, int device_count,
                          int local_rank);

// This process's node-local rank: WINCLIP_LOCAL_RANK (exported by the MPI
// session), else OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), SLURM_LOCALID (srun),
// MPI_LOCALRANKID (MPICH), else 0.
int node_local_rank();

// choose_device() for this process: this LibTorch's CUDA devices and
// node_local_rank().
std::string device_for_this_process(const std::string& request);

// Every switch that changes results. Defaults are the paper's settings
// (preset "paper"); preset "anomalib-compat" reproduces the public reference.
struct Settings {
    std::string prompt_set = "paper";   // shipped name or path to a prompt-set YAML
    double temperature = 0.01;          // softmax temperature of Eq. (1), > 0
    bool normalize_prompts = true;      // L2-normalise prompt embeddings before averaging
    bool image_scale_in_fusion = true;  // the class-token score joins the zero-shot harmonic mean
    double harmonic_eps = 0.0;          // added to scores inside harmonic means, >= 0
    std::vector<int> window_sizes = {2, 3};  // kernel sizes in patches
    int window_stride = 1;              // in patches

    nlohmann::json to_json() const;
    // Short names of switches that differ from the paper preset, e.g. "t0.07+raw";
    // empty when none differ. Used in cell ids.
    std::string switch_suffix() const;
};

// Named presets: "paper", "anomalib-compat". Throws ConfigError on others.
Settings preset(const std::string& name);

// Embeddings of one image, as stored in the cache.
struct ImageEmbeddings {
    FloatArray image_embedding;                 // [D] projected class token
    FloatArray patch_tokens;                    // [G*G, W] last layer after ln_post, not projected
    std::vector<FloatArray> window_embeddings;  // per window size: [n_windows, D] projected
};

// Where the model input came from in the original image, for native-size maps.
struct ImageGeometry {
    int width = 0, height = 0;  // original
    // The centre crop's footprint in original pixel coordinates (floating point,
    // as the resize maps it back).
    double crop_x0 = 0, crop_y0 = 0, crop_x1 = 0, crop_y1 = 0;
};

struct ScoreResult {
    std::vector<float> image_scores;            // [N]
    FloatArray grid_maps;                       // [N, g, g]
    std::vector<float> zero_shot_image_scores;  // [N]
    FloatArray zero_shot_grid_maps;             // [N, g, g]
    FloatArray vision_grid_maps;                // [N, g, g], empty without references
};

class Pipeline {
public:
    // Loads the checkpoint; throws ModelError naming missing/misshapen tensors.
    Pipeline(const BackboneSpec& backbone, const Settings& settings);
    ~Pipeline();
    Pipeline(Pipeline&&) noexcept;

    const Settings& settings() const;
    // True when the backbone says so or its weights are the bundled demo
    // checkpoint's (recognised by their hash): its scores are meaningless.
    bool random_weights() const;
    int grid_size() const;   // g
    int image_size() const;  // S
    // GFLOP of one image's forward pass with its windows (clip::vision_flops;
    // an upper bound when window_stride > 1), for work estimates.
    double image_gflops() const;

    // Content key of everything that changes stored image embeddings: the
    // checkpoint's tensor bytes, the model config, preprocessing, window sizes
    // and stride, patch-token layer and ln_post. Hex SHA-256.
    std::string image_embedding_key() const;
    // Content key of the text side (model + exact prompt strings).
    std::string text_key(const std::string& class_name) const;

    // Decodes, preprocesses and embeds images (batched). Throws IoError naming
    // the file on undecodable input.
    std::vector<ImageEmbeddings> embed_images(const std::vector<std::string>& paths,
                                              std::vector<ImageGeometry>* geometry = nullptr);
    // Embeds already-preprocessed pixels [B, 3, S, S], CLIP-normalised.
    std::vector<ImageEmbeddings> embed_pixels(const FloatArray& pixels);

    // The prompts and [2, D] text prototypes (row 0 normal, row 1 anomalous).
    FloatArray text_prototypes(const std::string& class_name);

    // Forward passes run by this process so far (all Pipelines together), so a
    // warm-cache run can prove it ran none.
    static int64_t image_forward_passes();
    static int64_t text_forward_passes();

    // WinCLIP (no references) or WinCLIP+ (references given).
    ScoreResult score(const FloatArray& prototypes, const std::vector<ImageEmbeddings>& tests,
                      const std::vector<ImageEmbeddings>& references) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// grid_maps[i] upsampled bilinearly (align_corners false) to S x S.
FloatArray upsample_to_input(const FloatArray& grid_map /*[g, g]*/, int size);
// grid_maps[i] upsampled onto the crop's footprint in the original image;
// pixels outside the footprint take the nearest value. Returns [H, W].
FloatArray upsample_to_native(const FloatArray& grid_map /*[g, g]*/, const ImageGeometry& geometry);

}  // namespace winclip::method
