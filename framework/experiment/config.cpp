#include "experiment/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "winclip/settings.h"

namespace winclip::experiment {
namespace fs = std::filesystem;
namespace {

// Reading context: the file and the key path under construction, so every
// message can say where the bad value is.
struct Reader {
    std::string source;
    std::string folder;

    [[noreturn]] void fail(const std::string& what, const std::string& key) const {
        throw ConfigError(fmt::format("{} ({}: {})", what, source, key));
    }

    void check_keys(const YAML::Node& node, const std::string& key,
                    const std::set<std::string>& allowed) const {
        if (!node.IsMap()) fail("expected a mapping", key);
        for (const auto& kv : node) {
            const std::string name = kv.first.as<std::string>();
            if (!allowed.count(name)) {
                std::string known;
                for (const auto& a : allowed) known += (known.empty() ? "" : ", ") + a;
                fail(fmt::format("unknown key '{}' (known keys: {})", name, known),
                     key.empty() ? name : key + "." + name);
            }
        }
    }

    template <typename T>
    T scalar(const YAML::Node& node, const std::string& key, const char* type_name) const {
        if (!node.IsScalar()) fail(fmt::format("expected {}", type_name), key);
        try {
            return node.as<T>();
        } catch (const YAML::Exception&) {
            fail(fmt::format("expected {}, got '{}'", type_name, node.Scalar()), key);
        }
    }
    std::string string(const YAML::Node& n, const std::string& key) const {
        return scalar<std::string>(n, key, "a string");
    }
    int integer(const YAML::Node& n, const std::string& key) const {
        return scalar<int>(n, key, "an integer");
    }
    double number(const YAML::Node& n, const std::string& key) const {
        return scalar<double>(n, key, "a number");
    }
    bool boolean(const YAML::Node& n, const std::string& key) const {
        return scalar<bool>(n, key, "true or false");
    }

    YAML::Node sequence(const YAML::Node& n, const std::string& key) const {
        if (!n.IsSequence()) fail("expected a list", key);
        if (n.size() == 0) fail("must not be empty", key);
        return n;
    }

    std::string path(const YAML::Node& n, const std::string& key) const {
        const std::string p = string(n, key);
        if (p.empty()) fail("must not be empty", key);
        return resolve(p);
    }
    std::string resolve(const std::string& p) const {
        const fs::path path(p);
        // Absolute, so run.json and cache records do not depend on the working folder.
        if (path.is_absolute()) return path.lexically_normal().string();
        return fs::absolute(fs::path(folder) / path).lexically_normal().string();
    }
    std::string existing_file(const YAML::Node& n, const std::string& key) const {
        const std::string p = path(n, key);
        if (!fs::is_regular_file(p)) fail(fmt::format("no such file: {}", p), key);
        return p;
    }
};

// Names that appear in cell ids and file names: no separators, no spaces.
bool is_id_safe(const std::string& s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
               c == '+';
    });
}

bool looks_like_path(const std::string& s) {
    return s.find('/') != std::string::npos ||
           (s.size() > 5 && s.substr(s.size() - 5) == ".yaml") ||
           (s.size() > 4 && s.substr(s.size() - 4) == ".yml");
}

DatasetSpec read_dataset(const Reader& r, const YAML::Node& n, const std::string& key) {
    r.check_keys(n, key, {"type", "name", "root", "classes", "split_csv"});
    DatasetSpec d;
    if (!n["type"]) r.fail("missing key 'type' (mvtec or visa)", key);
    d.type = r.string(n["type"], key + ".type");
    if (d.type != "mvtec" && d.type != "visa") {
        r.fail(fmt::format("dataset type must be mvtec or visa, got '{}'", d.type), key + ".type");
    }
    d.name = n["name"] ? r.string(n["name"], key + ".name") : d.type;
    if (!is_id_safe(d.name)) {
        r.fail(
            fmt::format("name must use letters, digits, '-', '_', '.', '+' only, got '{}'", d.name),
            key + ".name");
    }
    if (!n["root"]) r.fail("missing key 'root'", key);
    d.root = r.path(n["root"], key + ".root");
    if (!fs::is_directory(d.root)) r.fail(fmt::format("no such folder: {}", d.root), key + ".root");
    if (n["split_csv"]) {
        if (d.type != "visa") r.fail("split_csv applies to visa datasets only", key + ".split_csv");
        d.split_csv = r.existing_file(n["split_csv"], key + ".split_csv");
    }
    if (n["classes"]) {
        const YAML::Node c = n["classes"];
        if (c.IsScalar() && c.Scalar() == "all") {
            // empty = all
        } else {
            r.sequence(c, key + ".classes");
            std::set<std::string> seen;
            for (size_t i = 0; i < c.size(); ++i) {
                const std::string k = fmt::format("{}.classes[{}]", key, i);
                const std::string name = r.string(c[i], k);
                if (!is_id_safe(name)) r.fail(fmt::format("invalid class name '{}'", name), k);
                if (!seen.insert(name).second) r.fail(fmt::format("duplicate class '{}'", name), k);
                d.classes.push_back(name);
            }
        }
    }
    return d;
}

method::BackboneSpec read_backbone(const Reader& r, const YAML::Node& n, const std::string& key) {
    r.check_keys(n, key, {"name", "checkpoint", "model_config", "random_weights"});
    method::BackboneSpec b;
    for (const char* required : {"name", "checkpoint", "model_config"}) {
        if (!n[required]) r.fail(fmt::format("missing key '{}'", required), key);
    }
    b.name = r.string(n["name"], key + ".name");
    if (!is_id_safe(b.name)) {
        r.fail(
            fmt::format("name must use letters, digits, '-', '_', '.', '+' only, got '{}'", b.name),
            key + ".name");
    }
    b.checkpoint = r.existing_file(n["checkpoint"], key + ".checkpoint");
    b.model_config = r.existing_file(n["model_config"], key + ".model_config");
    if (n["random_weights"])
        b.random_weights = r.boolean(n["random_weights"], key + ".random_weights");
    return b;
}

method::Settings read_switches(const Reader& r, const YAML::Node& n, const std::string& key) {
    r.check_keys(n, key,
                 {"preset", "temperature", "prompt_average", "image_scale_in_fusion",
                  "harmonic_eps", "window_sizes", "window_stride"});
    method::Settings s = method::preset("paper");
    if (n["preset"]) {
        const std::string name = r.string(n["preset"], key + ".preset");
        try {
            s = method::preset(name);
        } catch (const ConfigError& e) {
            r.fail(e.what(), key + ".preset");
        }
    }
    if (n["temperature"]) s.temperature = r.number(n["temperature"], key + ".temperature");
    if (n["prompt_average"]) {
        const std::string v = r.string(n["prompt_average"], key + ".prompt_average");
        if (v != "raw" && v != "normalized") {
            r.fail(fmt::format("prompt_average must be raw or normalized, got '{}'", v),
                   key + ".prompt_average");
        }
        s.normalize_prompts = v == "normalized";
    }
    if (n["image_scale_in_fusion"]) {
        s.image_scale_in_fusion =
            r.boolean(n["image_scale_in_fusion"], key + ".image_scale_in_fusion");
    }
    if (n["harmonic_eps"]) s.harmonic_eps = r.number(n["harmonic_eps"], key + ".harmonic_eps");
    if (n["window_sizes"]) {
        const YAML::Node w = r.sequence(n["window_sizes"], key + ".window_sizes");
        s.window_sizes.clear();
        for (size_t i = 0; i < w.size(); ++i) {
            s.window_sizes.push_back(r.integer(w[i], fmt::format("{}.window_sizes[{}]", key, i)));
        }
    }
    if (n["window_stride"]) s.window_stride = r.integer(n["window_stride"], key + ".window_stride");
    method::validate_settings(s, r.source + ": " + key);
    return s;
}

std::vector<int> read_ints(const Reader& r, const YAML::Node& n, const std::string& key,
                           const char* what) {
    r.sequence(n, key);
    std::vector<int> out;
    std::set<int> seen;
    for (size_t i = 0; i < n.size(); ++i) {
        const std::string k = fmt::format("{}[{}]", key, i);
        const int v = r.integer(n[i], k);
        if (v < 0) r.fail(fmt::format("{} must be >= 0, got {}", what, v), k);
        if (!seen.insert(v).second) r.fail(fmt::format("duplicate {} {}", what, v), k);
        out.push_back(v);
    }
    return out;
}

}  // namespace

std::string prompt_set_id(const std::string& name_or_path) {
    if (!looks_like_path(name_or_path)) return name_or_path;
    return fs::path(name_or_path).stem().string();
}

Experiment parse_experiment(const std::string& yaml_text, const std::string& source,
                            const std::string& folder) {
    Reader r{source, folder};
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
        throw ConfigError(fmt::format("{}: not valid YAML: {}", source, e.what()));
    }
    if (!root.IsMap()) throw ConfigError(source + ": expected a mapping at the top level");
    r.check_keys(root, "", {"name", "datasets", "backbones", "grid", "cache", "run"});

    Experiment e;
    e.source = source;
    e.folder = folder;
    e.name = root["name"] ? r.string(root["name"], "name") : fs::path(source).stem().string();

    // --- datasets
    if (!root["datasets"]) r.fail("missing key 'datasets'", "datasets");
    {
        const YAML::Node ds = r.sequence(root["datasets"], "datasets");
        std::set<std::string> names;
        for (size_t i = 0; i < ds.size(); ++i) {
            const std::string key = fmt::format("datasets[{}]", i);
            e.datasets.push_back(read_dataset(r, ds[i], key));
            if (!names.insert(e.datasets.back().name).second) {
                r.fail(fmt::format("two datasets are named '{}'; give one a 'name'",
                                   e.datasets.back().name),
                       key + ".name");
            }
        }
    }

    // --- backbones
    if (!root["backbones"]) r.fail("missing key 'backbones'", "backbones");
    {
        const YAML::Node bs = r.sequence(root["backbones"], "backbones");
        std::set<std::string> names;
        for (size_t i = 0; i < bs.size(); ++i) {
            const std::string key = fmt::format("backbones[{}]", i);
            e.backbones.push_back(read_backbone(r, bs[i], key));
            if (!names.insert(e.backbones.back().name).second) {
                r.fail(fmt::format("duplicate backbone name '{}'", e.backbones.back().name),
                       key + ".name");
            }
        }
    }

    // --- grid
    if (root["grid"]) {
        const YAML::Node g = root["grid"];
        r.check_keys(g, "grid", {"prompt_sets", "methods", "shots", "seeds", "switches"});
        if (g["prompt_sets"]) {
            const YAML::Node ps = r.sequence(g["prompt_sets"], "grid.prompt_sets");
            std::set<std::string> ids;
            for (size_t i = 0; i < ps.size(); ++i) {
                const std::string key = fmt::format("grid.prompt_sets[{}]", i);
                std::string p = r.string(ps[i], key);
                if (p.empty()) r.fail("must not be empty", key);
                if (looks_like_path(p)) {
                    p = r.resolve(p);
                    if (!fs::is_regular_file(p)) r.fail(fmt::format("no such file: {}", p), key);
                }
                if (!is_id_safe(prompt_set_id(p))) {
                    r.fail(fmt::format("invalid prompt set name '{}'", prompt_set_id(p)), key);
                }
                if (!ids.insert(prompt_set_id(p)).second) {
                    r.fail(fmt::format("two prompt sets share the name '{}'", prompt_set_id(p)),
                           key);
                }
                e.prompt_sets.push_back(p);
            }
        }
        if (g["methods"]) {
            const YAML::Node ms = r.sequence(g["methods"], "grid.methods");
            e.methods.clear();
            for (size_t i = 0; i < ms.size(); ++i) {
                const std::string key = fmt::format("grid.methods[{}]", i);
                const std::string m = r.string(ms[i], key);
                if (m != "winclip" && m != "winclip+") {
                    r.fail(fmt::format("method must be winclip or winclip+, got '{}'", m), key);
                }
                if (std::count(e.methods.begin(), e.methods.end(), m)) {
                    r.fail(fmt::format("duplicate method '{}'", m), key);
                }
                e.methods.push_back(m);
            }
        }
        if (g["shots"]) e.shots = read_ints(r, g["shots"], "grid.shots", "shots");
        if (g["seeds"]) e.seeds = read_ints(r, g["seeds"], "grid.seeds", "seed");
        if (g["switches"]) {
            const YAML::Node ss = r.sequence(g["switches"], "grid.switches");
            e.switches.clear();
            std::set<std::string> seen;
            for (size_t i = 0; i < ss.size(); ++i) {
                const std::string key = fmt::format("grid.switches[{}]", i);
                e.switches.push_back(read_switches(r, ss[i], key));
                const std::string id =
                    e.switches.back().switch_suffix() + "|" + e.switches.back().prompt_set;
                if (!seen.insert(id).second) r.fail("two switch sets are identical", key);
            }
        }
    }
    // Each k must have a method that takes it: winclip for k = 0, winclip+ for k > 0.
    const bool zero = std::count(e.methods.begin(), e.methods.end(), "winclip") > 0;
    const bool few = std::count(e.methods.begin(), e.methods.end(), "winclip+") > 0;
    for (size_t i = 0; i < e.shots.size(); ++i) {
        if (e.shots[i] == 0 && !zero) {
            r.fail("k = 0 needs method winclip, which grid.methods leaves out",
                   fmt::format("grid.shots[{}]", i));
        }
        if (e.shots[i] > 0 && !few) {
            r.fail(fmt::format("k = {} needs method winclip+, which grid.methods leaves out",
                               e.shots[i]),
                   fmt::format("grid.shots[{}]", i));
        }
    }

    // --- cache
    if (!root["cache"]) r.fail("missing key 'cache' (the embedding cache folder)", "cache");
    {
        const YAML::Node c = root["cache"];
        r.check_keys(c, "cache", {"folder", "dtype"});
        if (!c["folder"]) r.fail("missing key 'folder'", "cache");
        e.cache_folder = r.path(c["folder"], "cache.folder");
        if (c["dtype"]) {
            const std::string d = r.string(c["dtype"], "cache.dtype");
            if (d != "float32" && d != "float16") {
                r.fail(fmt::format("dtype must be float32 or float16, got '{}'", d), "cache.dtype");
            }
            e.cache_float16 = d == "float16";
        }
    }

    // --- run
    if (root["run"]) {
        const YAML::Node run = root["run"];
        r.check_keys(run, "run", {"batch_size", "device"});
        if (run["device"]) {
            e.device = r.string(run["device"], "run.device");
            // The form only; whether this machine has the device is checked
            // when the run starts (method::choose_device).
            const bool indexed = e.device.size() > 5 && e.device.rfind("cuda:", 0) == 0 &&
                                 std::all_of(e.device.begin() + 5, e.device.end(),
                                             [](char c) { return c >= '0' && c <= '9'; });
            if (e.device != "auto" && e.device != "cpu" && e.device != "cuda" && !indexed) {
                r.fail(fmt::format("device must be auto, cpu, cuda or cuda:N, got '{}'", e.device),
                       "run.device");
            }
            for (auto& b : e.backbones) b.device = e.device;
        }
        if (run["batch_size"]) {
            e.batch_size = r.integer(run["batch_size"], "run.batch_size");
            if (e.batch_size < 1) {
                r.fail(fmt::format("batch_size must be >= 1, got {}", e.batch_size),
                       "run.batch_size");
            }
        }
    }
    return e;
}

Experiment load_experiment(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw IoError("cannot read experiment file " + path);
    std::stringstream text;
    text << in.rdbuf();
    const std::string folder = fs::path(path).parent_path().string();
    return parse_experiment(text.str(), path, folder.empty() ? "." : folder);
}

nlohmann::json Experiment::to_json() const {
    nlohmann::json j;
    j["name"] = name;
    j["source"] = source;
    for (const auto& d : datasets) {
        j["datasets"].push_back({{"name", d.name},
                                 {"type", d.type},
                                 {"root", d.root},
                                 {"split_csv", d.split_csv},
                                 {"classes", d.classes}});
    }
    for (const auto& b : backbones) {
        j["backbones"].push_back({{"name", b.name},
                                  {"checkpoint", b.checkpoint},
                                  {"model_config", b.model_config},
                                  {"random_weights", b.random_weights}});
    }
    j["grid"]["prompt_sets"] = prompt_sets;
    j["grid"]["methods"] = methods;
    j["grid"]["shots"] = shots;
    j["grid"]["seeds"] = seeds;
    for (const auto& s : switches) j["grid"]["switches"].push_back(s.to_json());
    j["cache"] = {{"folder", cache_folder}, {"dtype", cache_float16 ? "float16" : "float32"}};
    j["run"] = {{"batch_size", batch_size}, {"device", device}};
    return j;
}

}  // namespace winclip::experiment
