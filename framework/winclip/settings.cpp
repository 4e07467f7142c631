// Presets and the written form of the method's switches (pipeline.h).
#include "winclip/settings.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"

namespace winclip::method {
namespace {

// Shortest round-trip decimal form, which is also filesystem-safe
// ("0.07", "1e-06"): digits, '.', 'e' and '-' only.
std::string number(double v) { return fmt::format("{}", v); }

std::string join_ints(const std::vector<int>& v, const char* sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
    return s;
}

}  // namespace

const std::vector<std::string>& preset_names() {
    static const std::vector<std::string> names = {"paper", "anomalib-compat"};
    return names;
}

Settings preset(const std::string& name) {
    Settings s;  // the in-class defaults are the paper's settings
    if (name == "paper") {
        // Section 4 of the paper: its own prompt lists, CLIP's learned
        // temperature (1 / logit_scale = 1 / 100), prompt embeddings averaged as
        // unit vectors (CLIP's zero-shot recipe), harmonic fusion of the image,
        // 2x2 and 3x3 scales (section 4.2, "Multi-scale aggregation").
        s.prompt_set = "paper";
        s.temperature = 0.01;
        s.normalize_prompts = true;
        s.image_scale_in_fusion = true;
        s.harmonic_eps = 0.0;
        s.window_sizes = {2, 3};
        s.window_stride = 1;
        return s;
    }
    if (name == "anomalib-compat") {
        // The public reference the golden fixture was made with: its 21-template
        // list, temperature 0.07, the mean of unnormalised prompt embeddings.
        s.prompt_set = "anomalib-compat";
        s.temperature = 0.07;
        s.normalize_prompts = false;
        s.image_scale_in_fusion = true;
        s.harmonic_eps = 0.0;
        s.window_sizes = {2, 3};
        s.window_stride = 1;
        return s;
    }
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError(fmt::format("unknown preset '{}' (known presets: {})", name, known));
}

nlohmann::json Settings::to_json() const {
    return nlohmann::json{
        {"prompt_set", prompt_set},
        {"temperature", temperature},
        {"prompt_average", prompt_average_name(normalize_prompts)},
        {"image_scale_in_fusion", image_scale_in_fusion},
        {"harmonic_eps", harmonic_eps},
        {"window_sizes", window_sizes},
        {"window_stride", window_stride},
    };
}

std::string Settings::switch_suffix() const {
    // The prompt set is its own field of a cell id, so it is not repeated here.
    // Order is fixed so that ids are stable.
    const Settings paper = preset("paper");
    std::vector<std::string> parts;
    if (temperature != paper.temperature) parts.push_back("t" + number(temperature));
    if (normalize_prompts != paper.normalize_prompts) {
        parts.push_back(normalize_prompts ? "norm" : "raw");
    }
    if (image_scale_in_fusion != paper.image_scale_in_fusion) {
        parts.push_back(image_scale_in_fusion ? "img" : "noimg");
    }
    if (harmonic_eps != paper.harmonic_eps) parts.push_back("eps" + number(harmonic_eps));
    if (window_sizes != paper.window_sizes) parts.push_back("w" + join_ints(window_sizes, "-"));
    if (window_stride != paper.window_stride) parts.push_back("s" + std::to_string(window_stride));
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? "+" : "") + parts[i];
    return out;
}

void validate_settings(const Settings& s, const std::string& where) {
    if (!(s.temperature > 0.0) || !std::isfinite(s.temperature)) {
        throw ConfigError(fmt::format("temperature must be a finite number > 0, got {} ({})",
                                      s.temperature, where));
    }
    if (!(s.harmonic_eps >= 0.0) || !std::isfinite(s.harmonic_eps)) {
        throw ConfigError(fmt::format("harmonic_eps must be a finite number >= 0, got {} ({})",
                                      s.harmonic_eps, where));
    }
    if (s.window_stride < 1) {
        throw ConfigError(
            fmt::format("window_stride must be >= 1, got {} ({})", s.window_stride, where));
    }
    for (size_t i = 0; i < s.window_sizes.size(); ++i) {
        if (s.window_sizes[i] < 1) {
            throw ConfigError(fmt::format("window_sizes[{}] must be >= 1, got {} ({})", i,
                                          s.window_sizes[i], where));
        }
    }
    if (s.prompt_set.empty()) {
        throw ConfigError(fmt::format("prompt_set must not be empty ({})", where));
    }
}

bool parse_prompt_average(const std::string& value, const std::string& where) {
    if (value == "raw") return false;
    if (value == "normalized") return true;
    throw ConfigError(
        fmt::format("prompt average must be 'raw' or 'normalized', got '{}' ({})", value, where));
}

std::string prompt_average_name(bool normalize_prompts) {
    return normalize_prompts ? "normalized" : "raw";
}

}  // namespace winclip::method
