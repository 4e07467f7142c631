// OpenCLIP model-config JSON (the files under configs/backbones/ and the JSON
// beside a checkpoint), reduced to what this implementation supports: a ViT
// image tower with class-token pooling and the standard causal text tower.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace winclip::clip {

struct VisionConfig {
    int image_size = 224;    // input side S in pixels (square)
    int layers = 12;         // transformer blocks
    int width = 768;         // token width
    int head_width = 64;     // width per attention head; heads = width / head_width
    double mlp_ratio = 4.0;  // hidden width of the MLP = width * mlp_ratio
    int patch_size = 16;     // patch side in pixels; S must be a multiple of it

    int grid_size() const { return image_size / patch_size; }  // G
    int heads() const { return width / head_width; }
    int mlp_width() const { return static_cast<int>(width * mlp_ratio); }
};

struct TextConfig {
    int context_length = 77;  // tokens per prompt, start and end included
    int vocab_size = 49408;   // token embedding rows
    int width = 512;          // token width
    int heads = 8;            // attention heads
    int layers = 12;          // transformer blocks
    double mlp_ratio = 4.0;   // hidden width of the MLP = width * mlp_ratio

    int mlp_width() const { return static_cast<int>(width * mlp_ratio); }
};

struct ModelConfig {
    int embed_dim = 512;      // D, the joint embedding width
    bool quick_gelu = false;  // x * sigmoid(1.702 x) instead of exact GELU (OpenAI weights)
    VisionConfig vision;
    TextConfig text;
    std::string source;  // file it was read from, for messages ("" when built in code)

    // The config as OpenCLIP JSON with every default filled in; stable key order,
    // so it can be hashed for cache keys.
    nlohmann::json to_json() const;
};

// Reads and validates an OpenCLIP model config. Throws IoError when the file
// cannot be read or parsed, ModelError naming the key for unsupported
// architectures (ResNet towers, attentional pooling, timm or Hugging Face
// towers, ...) or invalid values.
ModelConfig load_model_config(const std::string& path);
// Same from parsed JSON; `origin` names the source in messages.
ModelConfig parse_model_config(const nlohmann::json& json, const std::string& origin);

// <repo>/configs/backbones/<name>.json, e.g. name "ViT-B-16-plus-240". The file
// may not exist; load_model_config says so.
std::string shipped_model_config_path(const std::string& name);

}  // namespace winclip::clip
