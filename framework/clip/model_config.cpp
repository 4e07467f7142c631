#include "clip/model_config.h"

#include <fmt/format.h>

#include <fstream>
#include <set>

#include "core/error.h"

#ifndef WINCLIP_BACKBONES_DIR
#error "WINCLIP_BACKBONES_DIR must name configs/backbones (set in framework/clip/CMakeLists.txt)"
#endif

namespace winclip::clip {
namespace {

using nlohmann::json;

// Keys of OpenCLIP's vision/text configs that select features this
// implementation does not have. Each is accepted only at the value that means
// "feature off" (OpenCLIP's default), so a config using one fails loudly
// instead of silently running a different model.
bool is_off(const json& v) {
    if (v.is_null()) return true;
    if (v.is_boolean()) return !v.get<bool>();
    if (v.is_number()) return v.get<double>() == 0.0;
    if (v.is_string()) return v.get<std::string>().empty();
    return false;
}

[[noreturn]] void unsupported(const std::string& origin, const std::string& key, const json& value,
                              const std::string& why) {
    throw ModelError(fmt::format("{}: unsupported model config key {} = {} ({})", origin, key,
                                 value.dump(), why));
}

int get_positive_int(const json& obj, const std::string& key, int fallback,
                     const std::string& origin, const std::string& prefix) {
    if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
    const json& v = obj.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 30)) {
        throw ModelError(fmt::format("{}: {}{} must be a positive integer, got {}", origin, prefix,
                                     key, v.dump()));
    }
    return v.get<int>();
}

// The MLP's hidden width, width * mlp_ratio, must be a usable int (the config
// structs convert it with static_cast<int>).
void check_mlp_width(int width, double mlp_ratio, const std::string& origin,
                     const std::string& prefix) {
    const double hidden = width * mlp_ratio;
    if (!(hidden >= 1.0 && hidden <= double(1 << 30))) {
        throw ModelError(fmt::format("{}: {}mlp_ratio {} gives an MLP width of {} for width {}",
                                     origin, prefix, mlp_ratio, hidden, width));
    }
}

double get_positive_double(const json& obj, const std::string& key, double fallback,
                           const std::string& origin, const std::string& prefix) {
    if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
    const json& v = obj.at(key);
    if (!v.is_number() || v.get<double>() <= 0) {
        throw ModelError(fmt::format("{}: {}{} must be a positive number, got {}", origin, prefix,
                                     key, v.dump()));
    }
    return v.get<double>();
}

// Rejects keys OpenCLIP does not define for this tower, so a typo is not
// silently ignored. Keys of timm / Hugging Face towers pass here; choosing such
// a tower is rejected separately.
void check_known_keys(const json& obj, const std::set<std::string>& known,
                      const std::string& origin, const std::string& prefix) {
    for (const auto& [key, value] : obj.items()) {
        if (known.count(key) || key.rfind("timm_", 0) == 0 || key.rfind("hf_", 0) == 0) continue;
        throw ModelError(fmt::format("{}: unknown model config key {}{}", origin, prefix, key));
    }
}

VisionConfig parse_vision(const json& v, const std::string& origin) {
    const std::string p = "vision_cfg.";
    if (!v.is_object()) throw ModelError(fmt::format("{}: vision_cfg must be an object", origin));
    check_known_keys(v,
                     {"image_size",
                      "layers",
                      "width",
                      "head_width",
                      "mlp_ratio",
                      "patch_size",
                      "attentional_pool",
                      "attn_pooler_queries",
                      "attn_pooler_heads",
                      "patch_dropout",
                      "ls_init_value",
                      "no_ln_pre",
                      "final_ln_after_pool",
                      "input_patchnorm",
                      "global_average_pool",
                      "output_tokens",
                      "act_kwargs",
                      "norm_kwargs",
                      "pool_type",
                      "pos_embed_type"},
                     origin, p);
    if (v.contains("pos_embed_type") && v.at("pos_embed_type") != "learnable") {
        unsupported(origin, p + "pos_embed_type", v.at("pos_embed_type"),
                    "only learned positional embeddings");
    }
    // Towers other than OpenCLIP's own ViT.
    if (v.contains("layers") && v.at("layers").is_array()) {
        unsupported(origin, p + "layers", v.at("layers"),
                    "a list of stage depths is a ResNet tower");
    }
    for (const char* key : {"timm_model_name", "hf_model_name"}) {
        if (v.contains(key) && !is_off(v.at(key))) {
            unsupported(origin, p + key, v.at(key), "only OpenCLIP's own ViT tower is implemented");
        }
    }
    // Variants of the ViT that change its computation at inference. (patch_dropout
    // and output_tokens are accepted: the first only acts in training, the
    // second only changes what OpenCLIP returns.)
    for (const char* key :
         {"attentional_pool", "ls_init_value", "no_ln_pre", "final_ln_after_pool",
          "input_patchnorm", "global_average_pool", "act_kwargs", "norm_kwargs"}) {
        if (!v.contains(key) || is_off(v.at(key))) continue;
        unsupported(origin, p + key, v.at(key), "this ViT variant is not implemented");
    }
    if (v.contains("pool_type") && v.at("pool_type") != "tok") {
        unsupported(origin, p + "pool_type", v.at("pool_type"), "only class-token pooling");
    }
    if (v.contains("image_size") && v.at("image_size").is_array()) {
        const json& s = v.at("image_size");
        if (s.size() != 2 || s[0] != s[1]) {
            unsupported(origin, p + "image_size", s, "only square inputs");
        }
    }
    if (v.contains("patch_size") && v.at("patch_size").is_null()) {
        unsupported(origin, p + "patch_size", nullptr, "a ViT tower needs a patch size");
    }

    VisionConfig c;
    json copy = v;
    if (copy.contains("image_size") && copy.at("image_size").is_array()) {
        copy["image_size"] = copy.at("image_size")[0];
    }
    c.image_size = get_positive_int(copy, "image_size", c.image_size, origin, p);
    c.layers = get_positive_int(copy, "layers", c.layers, origin, p);
    c.width = get_positive_int(copy, "width", c.width, origin, p);
    c.head_width = get_positive_int(copy, "head_width", c.head_width, origin, p);
    c.mlp_ratio = get_positive_double(copy, "mlp_ratio", c.mlp_ratio, origin, p);
    c.patch_size = get_positive_int(copy, "patch_size", c.patch_size, origin, p);
    check_mlp_width(c.width, c.mlp_ratio, origin, p);
    if (c.image_size % c.patch_size != 0) {
        throw ModelError(
            fmt::format("{}: vision_cfg.image_size {} is not a multiple of "
                        "vision_cfg.patch_size {}",
                        origin, c.image_size, c.patch_size));
    }
    if (c.width % c.head_width != 0) {
        throw ModelError(
            fmt::format("{}: vision_cfg.width {} is not a multiple of "
                        "vision_cfg.head_width {}",
                        origin, c.width, c.head_width));
    }
    return c;
}

TextConfig parse_text(const json& t, const std::string& origin) {
    const std::string p = "text_cfg.";
    if (!t.is_object()) throw ModelError(fmt::format("{}: text_cfg must be an object", origin));
    check_known_keys(t,
                     {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio",
                      "ls_init_value", "embed_cls", "proj_bias", "no_causal_mask", "act_kwargs",
                      "norm_kwargs", "output_tokens", "pool_type", "proj_type", "pad_id"},
                     origin, p);
    for (const char* key : {"hf_model_name", "hf_tokenizer_name", "ls_init_value", "embed_cls",
                            "proj_bias", "no_causal_mask", "act_kwargs", "norm_kwargs"}) {
        if (t.contains(key) && !is_off(t.at(key))) {
            unsupported(origin, p + key, t.at(key), "this text-tower variant is not implemented");
        }
    }
    if (t.contains("pool_type") && t.at("pool_type") != "argmax") {
        unsupported(origin, p + "pool_type", t.at("pool_type"),
                    "only pooling at the end token (argmax) is implemented");
    }
    if (t.contains("proj_type") && t.at("proj_type") != "linear") {
        unsupported(origin, p + "proj_type", t.at("proj_type"), "only a linear text projection");
    }
    if (t.contains("pad_id") && !is_off(t.at("pad_id"))) {
        unsupported(origin, p + "pad_id", t.at("pad_id"), "padding uses token 0");
    }
    TextConfig c;
    c.context_length = get_positive_int(t, "context_length", c.context_length, origin, p);
    c.vocab_size = get_positive_int(t, "vocab_size", c.vocab_size, origin, p);
    c.width = get_positive_int(t, "width", c.width, origin, p);
    c.heads = get_positive_int(t, "heads", c.heads, origin, p);
    c.layers = get_positive_int(t, "layers", c.layers, origin, p);
    c.mlp_ratio = get_positive_double(t, "mlp_ratio", c.mlp_ratio, origin, p);
    check_mlp_width(c.width, c.mlp_ratio, origin, p);
    if (c.width % c.heads != 0) {
        throw ModelError(fmt::format("{}: text_cfg.width {} is not a multiple of text_cfg.heads {}",
                                     origin, c.width, c.heads));
    }
    if (c.context_length < 2) {
        throw ModelError(fmt::format("{}: text_cfg.context_length must be >= 2, got {}", origin,
                                     c.context_length));
    }
    return c;
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& origin) {
    if (!j.is_object())
        throw ModelError(fmt::format("{}: a model config must be a JSON object", origin));
    static const std::set<std::string> kTopKeys = {
        "embed_dim",   "quick_gelu",       "vision_cfg",      "text_cfg",
        "custom_text", "init_logit_scale", "init_logit_bias", "cast_dtype"};
    for (const auto& [key, value] : j.items()) {
        if (!kTopKeys.count(key)) {
            throw ModelError(fmt::format("{}: unknown model config key {}", origin, key));
        }
    }
    if (j.contains("init_logit_bias") && !is_off(j.at("init_logit_bias"))) {
        unsupported(origin, "init_logit_bias", j.at("init_logit_bias"),
                    "a SigLIP-style logit bias is not implemented");
    }
    for (const char* key : {"embed_dim", "vision_cfg", "text_cfg"}) {
        if (!j.contains(key)) {
            throw ModelError(fmt::format("{}: model config lacks the key {}", origin, key));
        }
    }
    ModelConfig c;
    c.source = origin;
    c.embed_dim = get_positive_int(j, "embed_dim", c.embed_dim, origin, "");
    if (j.contains("quick_gelu")) {
        if (!j.at("quick_gelu").is_boolean()) {
            throw ModelError(fmt::format("{}: quick_gelu must be true or false, got {}", origin,
                                         j.at("quick_gelu").dump()));
        }
        c.quick_gelu = j.at("quick_gelu").get<bool>();
    }
    c.vision = parse_vision(j.at("vision_cfg"), origin);
    c.text = parse_text(j.at("text_cfg"), origin);
    return c;
}

ModelConfig load_model_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw IoError(fmt::format("cannot open model config {}", path));
    json j;
    // An OpenCLIP config nests 3 levels; deeper input is refused while parsing,
    // because nlohmann's dump() (used in messages) recurses once per level.
    constexpr int kMaxDepth = 16;
    const json::parser_callback_t limit_depth = [&](int depth, json::parse_event_t event,
                                                    json&) {
        if ((event == json::parse_event_t::object_start ||
             event == json::parse_event_t::array_start) &&
            depth > kMaxDepth) {
            throw ModelError(fmt::format("model config {} is nested deeper than {} levels", path,
                                         kMaxDepth));
        }
        return true;
    };
    try {
        j = json::parse(in, limit_depth);
    } catch (const json::exception& e) {
        throw IoError(fmt::format("model config {} is not valid JSON: {}", path, e.what()));
    }
    return parse_model_config(j, path);
}

std::string shipped_model_config_path(const std::string& name) {
    return std::string(WINCLIP_BACKBONES_DIR) + "/" + name + ".json";
}

nlohmann::json ModelConfig::to_json() const {
    json j;  // nlohmann's default object is a sorted map: stable key order
    j["embed_dim"] = embed_dim;
    j["quick_gelu"] = quick_gelu;
    j["vision_cfg"] = {{"image_size", vision.image_size}, {"layers", vision.layers},
                       {"width", vision.width},           {"head_width", vision.head_width},
                       {"mlp_ratio", vision.mlp_ratio},   {"patch_size", vision.patch_size}};
    j["text_cfg"] = {{"context_length", text.context_length},
                     {"vocab_size", text.vocab_size},
                     {"width", text.width},
                     {"heads", text.heads},
                     {"layers", text.layers},
                     {"mlp_ratio", text.mlp_ratio}};
    return j;
}

}  // namespace winclip::clip
