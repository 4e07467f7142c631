// `winclip score`: scores a list of images for one class with WinCLIP (no
// references) or WinCLIP+ (with references) and writes scores and maps to HDF5
// (the datasets are listed in docs/formats.md). This is also what a user runs on
// a folder of their own images: it prints one summary line per image.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "apps/winclip/command.h"
#include "core/context.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hdf5.h"
#include "io/image.h"
#include "winclip/pipeline.h"
#include "winclip/settings.h"

namespace winclip::cli {
namespace {

namespace fs = std::filesystem;

struct ScoreOptions {
    std::string checkpoint;         // OpenCLIP state dict (.bin/.pt) or .safetensors
    std::string model_config;       // OpenCLIP model-config JSON
    std::string class_name;         // object class, e.g. "bottle"
    std::string images;             // list file, one image path per line
    std::string references;         // list file of normal references ("" = zero-shot)
    std::string masks;              // list file: per image a mask path or "-" ("" = none)
    std::string prompt_set;         // overrides the preset's prompt set when given
    std::string preset = "paper";   // "paper" or "anomalib-compat"
    bool dump_embeddings = false;   // also store the embeddings
    std::string out;                // HDF5 file to write
    std::string device = "auto";    // auto | cpu | cuda | cuda:N (method::choose_device)
    // Switch overrides; applied only when given on the command line.
    double temperature = 0;
    std::string prompt_average;
    std::string image_scale_in_fusion;
    double harmonic_eps = 0;
};

// One path per line; blank lines and lines starting with '#' are skipped; a
// relative path is relative to the list file's folder. With `dash_is_none`, a
// line "-" stands for "no file" and reads as an empty string.
std::vector<std::string> read_path_list(const std::string& list_path, const std::string& what,
                                        bool dash_is_none) {
    std::ifstream in(list_path);
    if (!in) throw IoError("cannot open " + what + " " + list_path);
    const fs::path base = fs::path(list_path).parent_path();
    std::vector<std::string> paths;
    std::string line;
    while (std::getline(in, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        const fs::path p(line);
        paths.push_back(dash_is_none && line == "-" ? std::string()
                        : p.is_absolute()           ? p.string()
                                                    : (base / p).lexically_normal().string());
    }
    return paths;
}

std::vector<std::string> read_list(const std::string& list_path) {
    std::vector<std::string> paths = read_path_list(list_path, "image list", /*dash_is_none=*/false);
    if (paths.empty()) throw ConfigError("image list " + list_path + " names no images");
    return paths;
}

// Ground truth for `winclip metrics`: one line per image, in the images'
// order, a mask path (anomalous image) or "-" (normal image, no mask).
std::vector<std::string> read_mask_list(const std::string& list_path, size_t images) {
    std::vector<std::string> masks = read_path_list(list_path, "mask list", /*dash_is_none=*/true);
    if (masks.size() != images) {
        throw ConfigError("mask list " + list_path + " has " + std::to_string(masks.size()) +
                          " entries, the image list " + std::to_string(images) +
                          " (one line per image: a mask path or '-')");
    }
    return masks;
}

// Writes labels, masks/<i> and the links `scores` and `maps` that
// `winclip metrics` reads (docs/metrics.md), so the file scores directly.
void write_ground_truth(io::H5File& file, const std::vector<std::string>& images,
                        const std::vector<std::string>& masks,
                        const std::vector<method::ImageGeometry>& geometry) {
    Int64Array labels({static_cast<int64_t>(images.size())});
    for (size_t i = 0; i < images.size(); ++i) {
        const auto& g = geometry[i];
        Array<uint8_t> mask({g.height, g.width});
        if (!masks[i].empty()) {
            labels.values[i] = 1;
            const io::Mask m = io::load_mask(masks[i]);
            if (m.width != g.width || m.height != g.height) {
                throw DatasetError("mask " + masks[i] + " is " + std::to_string(m.width) + " x " +
                                   std::to_string(m.height) + " but its image " + images[i] +
                                   " is " + std::to_string(g.width) + " x " +
                                   std::to_string(g.height));
            }
            mask.values = m.values;
        }
        file.write("masks/" + std::to_string(i), mask, /*compress=*/true);
    }
    file.write("labels", labels);
    file.link("scores", "/image_scores");
    file.link("maps", "/anomaly_maps_native");
}

bool parse_on_off(const std::string& value, const std::string& flag) {
    if (value == "on") return true;
    if (value == "off") return false;
    throw ConfigError(flag + " must be 'on' or 'off', got '" + value + "'");
}

FloatArray slice(const FloatArray& a, int64_t i) {
    std::vector<int64_t> shape(a.shape.begin() + 1, a.shape.end());
    const int64_t n = Array<float>::numel(shape);
    return FloatArray(shape, std::vector<float>(a.values.begin() + i * n,
                                                a.values.begin() + (i + 1) * n));
}

FloatArray stack(const std::vector<FloatArray>& parts) {
    FloatArray out;
    out.shape = parts.at(0).shape;
    out.shape.insert(out.shape.begin(), static_cast<int64_t>(parts.size()));
    for (const auto& p : parts) out.values.insert(out.values.end(), p.values.begin(), p.values.end());
    return out;
}

void write_embeddings(io::H5File& file, const std::string& prefix,
                      const std::vector<method::ImageEmbeddings>& images,
                      const std::vector<int>& window_sizes) {
    std::vector<FloatArray> image, patch;
    for (const auto& e : images) {
        image.push_back(e.image_embedding);
        patch.push_back(e.patch_tokens);
    }
    file.write(prefix + "image_embeddings", stack(image));
    file.write(prefix + "patch_tokens", stack(patch));
    for (size_t s = 0; s < window_sizes.size(); ++s) {
        std::vector<FloatArray> windows;
        for (const auto& e : images) windows.push_back(e.window_embeddings[s]);
        file.write(prefix + "window_embeddings_" + std::to_string(window_sizes[s]), stack(windows));
    }
}

int run_score(const ScoreOptions& opts, const CLI::App& app) {
    // Settings: the preset, then every flag given on the command line.
    method::Settings settings = method::preset(opts.preset);
    if (!opts.prompt_set.empty()) settings.prompt_set = opts.prompt_set;
    if (app.count("--temperature")) settings.temperature = opts.temperature;
    if (app.count("--prompt-average"))
        settings.normalize_prompts = method::parse_prompt_average(opts.prompt_average,
                                                                  "--prompt-average");
    if (app.count("--image-scale-in-fusion"))
        settings.image_scale_in_fusion =
            parse_on_off(opts.image_scale_in_fusion, "--image-scale-in-fusion");
    if (app.count("--harmonic-eps")) settings.harmonic_eps = opts.harmonic_eps;
    method::validate_settings(settings, "command line");

    const std::vector<std::string> images = read_list(opts.images);
    const std::vector<std::string> references =
        opts.references.empty() ? std::vector<std::string>{} : read_list(opts.references);
    const std::vector<std::string> masks =
        opts.masks.empty() ? std::vector<std::string>{} : read_mask_list(opts.masks, images.size());

    method::BackboneSpec backbone;
    backbone.name = fs::path(opts.model_config).stem().string();
    backbone.checkpoint = opts.checkpoint;
    backbone.model_config = opts.model_config;
    backbone.device = opts.device;
    method::Pipeline pipeline(backbone, settings);
    const bool random = pipeline.random_weights();
    const std::string method_name = references.empty() ? "WinCLIP" : "WinCLIP+";
    log::info("score", "{} for class '{}': {} images, {} references, preset {}{}", method_name,
              opts.class_name, images.size(), references.size(), opts.preset,
              random ? " [RANDOM WEIGHTS: scores are meaningless]" : "");

    // Text prototypes, then embeddings of every image and reference.
    const FloatArray prototypes = pipeline.text_prototypes(opts.class_name);
    std::vector<method::ImageGeometry> geometry;
    const auto tests = pipeline.embed_images(images, &geometry);
    const auto refs = pipeline.embed_images(references);
    const method::ScoreResult result = pipeline.score(prototypes, tests, refs);

    // Write everything to a temporary name and rename, so a failed run never
    // leaves a half-written file under the requested name.
    const std::string tmp = opts.out + ".tmp";
    {
        io::H5File file(tmp, io::H5File::Mode::kTruncate);
        const auto n = static_cast<int64_t>(images.size());
        const int g = pipeline.grid_size();
        const int s = pipeline.image_size();
        file.write_strings("paths", images);
        file.write("image_scores", FloatArray({n}, result.image_scores));
        file.write("grid_maps", result.grid_maps);
        file.write("zero_shot_image_scores", FloatArray({n}, result.zero_shot_image_scores));
        file.write("zero_shot_grid_maps", result.zero_shot_grid_maps);
        if (!references.empty()) {
            file.write("vision_grid_maps", result.vision_grid_maps);
            file.write_strings("reference_paths", references);
        }
        FloatArray upsampled({n, s, s});
        for (int64_t i = 0; i < n; ++i) {
            const FloatArray grid = slice(result.grid_maps, i);
            const FloatArray map = method::upsample_to_input(grid, s);
            std::copy(map.values.begin(), map.values.end(),
                      upsampled.values.begin() + i * s * s);
            file.write("anomaly_maps_native/" + std::to_string(i),
                       method::upsample_to_native(grid, geometry[static_cast<size_t>(i)]),
                       /*compress=*/true);
        }
        file.write("anomaly_maps", upsampled, /*compress=*/true);
        if (!masks.empty()) write_ground_truth(file, images, masks, geometry);
        if (opts.dump_embeddings) {
            write_embeddings(file, "", tests, settings.window_sizes);
            if (!refs.empty()) write_embeddings(file, "references/", refs, settings.window_sizes);
        }
        nlohmann::json context = build_context();
        context["hdf5_version"] = io::hdf5_version();
        context["settings"] = settings.to_json();
        context["preset"] = opts.preset;
        context["class_name"] = opts.class_name;
        context["checkpoint"] = opts.checkpoint;
        context["model_config"] = opts.model_config;
        context["random_weights"] = random;
        context["device"] = method::device_for_this_process(opts.device);
        context["grid_size"] = g;
        context["image_size"] = s;
        file.write_attribute("/", "context", context.dump());
        file.write_attribute("/", "method", method_name);
        if (random) {
            file.write_attribute("/", "warning",
                                 std::string("random weights: these scores are meaningless"));
        }
        file.close();
    }
    std::error_code ec;
    fs::rename(tmp, opts.out, ec);
    if (ec) throw IoError("cannot rename " + tmp + " to " + opts.out + ": " + ec.message());

    // Per-image summary on stdout (results, not logs).
    std::printf("%s scores for class '%s'%s\n", method_name.c_str(), opts.class_name.c_str(),
                random ? " (RANDOM WEIGHTS: meaningless)" : "");
    std::printf("%10s %10s %10s  %s\n", "score", "zero-shot", "map max", "image");
    const int64_t cells = static_cast<int64_t>(pipeline.grid_size()) * pipeline.grid_size();
    for (size_t i = 0; i < images.size(); ++i) {
        const float* map = result.grid_maps.data() + static_cast<int64_t>(i) * cells;
        const float peak = *std::max_element(map, map + cells);
        std::printf("%10.6f %10.6f %10.6f  %s\n", result.image_scores[i],
                    result.zero_shot_image_scores[i], peak, images[i].c_str());
    }
    std::printf("wrote %s\n", opts.out.c_str());
    return 0;
}

const Registration kScore{
    "score", "Score a list of images for one class (WinCLIP; WinCLIP+ with --references)",
    [](CLI::App& app) {
        auto opts = std::make_shared<ScoreOptions>();
        app.add_option("--checkpoint", opts->checkpoint,
                       "OpenCLIP checkpoint (.bin/.pt state dict or .safetensors)")
            ->required();
        app.add_option("--model-config", opts->model_config, "OpenCLIP model-config JSON")
            ->required();
        app.add_option("--class", opts->class_name, "object class name used in the prompts")
            ->required();
        app.add_option("--images", opts->images,
                       "list file: one image per line, relative to the list's folder")
            ->required();
        app.add_option("--references", opts->references,
                       "list file of normal reference images (enables WinCLIP+)");
        app.add_option("--masks", opts->masks,
                       "list file of ground truth, one line per image: mask path or '-' for a "
                       "normal image; makes OUT.h5 readable by `winclip metrics`");
        app.add_option("--prompt-set", opts->prompt_set,
                       "shipped prompt-set name or YAML path")
            ->default_str("from --preset");
        app.add_option("--preset", opts->preset, "paper | anomalib-compat");
        app.add_flag("--dump-embeddings", opts->dump_embeddings,
                     "also write image, patch and window embeddings");
        app.add_option("--out", opts->out, "HDF5 file to write")->required();
        app.add_option("--device", opts->device,
                       "auto | cpu | cuda | cuda:N; auto takes the GPU of this node-local rank "
                       "when LibTorch has CUDA, else the CPU");
        app.add_option("--temperature", opts->temperature,
                       "softmax temperature (paper preset: 0.01)")
            ->default_str("from --preset");
        app.add_option("--prompt-average", opts->prompt_average,
                       "raw | normalized (paper preset: normalized)")
            ->default_str("from --preset");
        app.add_option("--image-scale-in-fusion", opts->image_scale_in_fusion,
                       "on | off (paper preset: on)")
            ->default_str("from --preset");
        app.add_option("--harmonic-eps", opts->harmonic_eps,
                       "epsilon inside harmonic means (paper preset: 0)")
            ->default_str("from --preset");
        CLI::App* self = &app;
        return [opts, self]() -> int { return run_score(*opts, *self); };
    }};

}  // namespace
}  // namespace winclip::cli
