#include "winclip/prompts.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace winclip::method {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPlaceholder = "{}";

size_t count_placeholders(const std::string& s) {
    size_t n = 0;
    for (size_t pos = s.find(kPlaceholder); pos != std::string::npos;
         pos = s.find(kPlaceholder, pos + 2)) {
        ++n;
    }
    return n;
}

// Replaces the single "{}" of `pattern` by `value`.
std::string fill(const std::string& pattern, const std::string& value) {
    const size_t pos = pattern.find(kPlaceholder);
    WINCLIP_CHECK(pos != std::string::npos);
    return pattern.substr(0, pos) + value + pattern.substr(pos + 2);
}

std::string key_path(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
}

// A mapping key as text. YAML also allows lists and maps as keys ("? [a, b]"),
// which name nothing here.
std::string key_name(const YAML::Node& key, const std::string& where, const std::string& source) {
    if (!key.IsScalar()) {
        throw ConfigError(fmt::format("prompt set {} has a key that is not a string ({}, line {})",
                                      source, where.empty() ? "top level" : where,
                                      key.Mark().line + 1));
    }
    return key.Scalar();
}

void reject_unknown_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                         const std::string& where, const std::string& source) {
    for (const auto& entry : map) {
        const std::string key = key_name(entry.first, where, source);
        if (!allowed.count(key)) {
            std::string known;
            for (const auto& k : allowed) known += (known.empty() ? "" : ", ") + k;
            throw ConfigError(fmt::format("unknown key '{}' in prompt set ({}: {}); known keys: {}",
                                          key_path(where, key), source,
                                          where.empty() ? "top level" : where, known));
        }
    }
}

// A list of strings each holding exactly one "{}". Empty lists are allowed only
// where `allow_empty` (class-specific additions).
std::vector<std::string> read_patterns(const YAML::Node& node, const std::string& key,
                                       const std::string& source, bool allow_empty) {
    if (!node.IsSequence()) {
        throw ConfigError(
            fmt::format("prompt set key '{}' must be a list of strings ({})", key, source));
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < node.size(); ++i) {
        if (!node[i].IsScalar()) {
            throw ConfigError(
                fmt::format("prompt set key '{}[{}]' must be a string ({})", key, i, source));
        }
        std::string s = node[i].as<std::string>();
        if (count_placeholders(s) != 1) {
            throw ConfigError(fmt::format(
                "prompt set key '{}[{}]' must contain exactly one \"{{}}\", got \"{}\" ({})", key,
                i, s, source));
        }
        out.push_back(std::move(s));
    }
    if (out.empty() && !allow_empty) {
        throw ConfigError(fmt::format("prompt set key '{}' must not be empty ({})", key, source));
    }
    return out;
}

std::string prompts_dir() { return std::string(WINCLIP_PROMPTS_DIR); }

bool is_shipped_name(const std::string& s) {
    if (s.empty() || s.find('/') != std::string::npos) return false;
    const fs::path p(s);
    const std::string ext = p.extension().string();
    return ext != ".yaml" && ext != ".yml";
}

}  // namespace

std::vector<std::string> shipped_prompt_sets() {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(prompts_dir(), ec)) {
        if (entry.path().extension() == ".yaml") names.push_back(entry.path().stem().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string resolve_prompt_set_path(const std::string& name_or_path) {
    if (!is_shipped_name(name_or_path)) return name_or_path;
    const fs::path path = fs::path(prompts_dir()) / (name_or_path + ".yaml");
    if (!fs::exists(path)) {
        std::string known;
        for (const auto& n : shipped_prompt_sets()) known += (known.empty() ? "" : ", ") + n;
        throw ConfigError(fmt::format(
            "unknown prompt set '{}': no file {} (shipped sets: {}; pass a path to use your own)",
            name_or_path, path.string(), known));
    }
    return path.string();
}

PromptSet parse_prompt_set(const std::string& yaml_text, const std::string& source) {
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
        throw ConfigError(fmt::format("cannot parse prompt set {}: {}", source, e.what()));
    }
    if (!root.IsMap()) {
        throw ConfigError(fmt::format("prompt set {} must be a YAML mapping at top level", source));
    }
    reject_unknown_keys(root,
                        {"description", "normal_states", "anomalous_states", "templates",
                         "class_names", "class_states"},
                        "", source);
    for (const char* required : {"normal_states", "anomalous_states", "templates"}) {
        if (!root[required]) {
            throw ConfigError(
                fmt::format("prompt set {} lacks the required key '{}'", source, required));
        }
    }

    PromptSet set;
    set.source = source;
    set.name = fs::path(source).stem().string();
    try {
        set.normal_states = read_patterns(root["normal_states"], "normal_states", source, false);
        set.anomalous_states =
            read_patterns(root["anomalous_states"], "anomalous_states", source, false);
        set.templates = read_patterns(root["templates"], "templates", source, false);

        if (const YAML::Node names = root["class_names"]) {
            if (!names.IsMap()) {
                throw ConfigError(fmt::format(
                    "prompt set key 'class_names' must map class ids to words ({})", source));
            }
            for (const auto& entry : names) {
                const std::string cls = key_name(entry.first, "class_names", source);
                if (!entry.second.IsScalar() || entry.second.as<std::string>().empty()) {
                    throw ConfigError(fmt::format(
                        "prompt set key 'class_names.{}' must be a non-empty string ({})", cls,
                        source));
                }
                const std::string words = entry.second.as<std::string>();
                if (count_placeholders(words) != 0) {
                    throw ConfigError(fmt::format(
                        "prompt set key 'class_names.{}' must not contain \"{{}}\" ({})", cls,
                        source));
                }
                set.class_names[cls] = words;
            }
        }
        if (const YAML::Node states = root["class_states"]) {
            if (!states.IsMap()) {
                throw ConfigError(fmt::format(
                    "prompt set key 'class_states' must map class ids to state lists ({})",
                    source));
            }
            for (const auto& entry : states) {
                const std::string cls = key_name(entry.first, "class_states", source);
                const std::string where = "class_states." + cls;
                if (!entry.second.IsMap()) {
                    throw ConfigError(fmt::format(
                        "prompt set key '{}' must be a mapping with 'normal' and/or 'anomalous' "
                        "({})",
                        where, source));
                }
                reject_unknown_keys(entry.second, {"normal", "anomalous"}, where, source);
                ClassStates cs;
                if (entry.second["normal"]) {
                    cs.normal =
                        read_patterns(entry.second["normal"], where + ".normal", source, true);
                }
                if (entry.second["anomalous"]) {
                    cs.anomalous = read_patterns(entry.second["anomalous"], where + ".anomalous",
                                                 source, true);
                }
                set.class_states[cls] = std::move(cs);
            }
        }
    } catch (const YAML::Exception& e) {
        throw ConfigError(fmt::format("malformed prompt set {}: {}", source, e.what()));
    }
    return set;
}

PromptSet load_prompt_set(const std::string& name_or_path) {
    const std::string path = resolve_prompt_set_path(name_or_path);
    std::ifstream in(path);
    if (!in) {
        throw ConfigError(fmt::format("cannot open prompt set file {}", path));
    }
    std::stringstream text;
    text << in.rdbuf();
    return parse_prompt_set(text.str(), path);
}

std::string object_name(const PromptSet& set, const std::string& class_name) {
    const auto it = set.class_names.find(class_name);
    return it == set.class_names.end() ? class_name : it->second;
}

PromptEnsemble expand_prompts(const PromptSet& set, const std::string& class_name) {
    if (class_name.empty()) {
        throw ConfigError(fmt::format("empty class name for prompt set {}", set.source));
    }
    const std::string object = object_name(set, class_name);

    std::vector<std::string> normal_states = set.normal_states;
    std::vector<std::string> anomalous_states = set.anomalous_states;
    if (const auto it = set.class_states.find(class_name); it != set.class_states.end()) {
        normal_states.insert(normal_states.end(), it->second.normal.begin(),
                             it->second.normal.end());
        anomalous_states.insert(anomalous_states.end(), it->second.anomalous.begin(),
                                it->second.anomalous.end());
    }

    // Every (state, template) combination, states outer: the compositional
    // prompt ensemble of section 4.1. Duplicated templates are kept on purpose
    // (the public reference's list has one, and its prototypes weight it twice).
    auto cross = [&](const std::vector<std::string>& states) {
        std::vector<std::string> out;
        out.reserve(states.size() * set.templates.size());
        for (const auto& state : states) {
            const std::string filled_state = fill(state, object);
            for (const auto& tmpl : set.templates) out.push_back(fill(tmpl, filled_state));
        }
        return out;
    };
    PromptEnsemble e;
    e.normal = cross(normal_states);
    e.anomalous = cross(anomalous_states);
    return e;
}

}  // namespace winclip::method
