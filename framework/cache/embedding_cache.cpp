#include "cache/embedding_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cache/atomic_file.h"
#include "core/context.h"
#include "core/error.h"
#include "core/log.h"
#include "core/sha256.h"
#include "io/file.h"
#include "io/hdf5.h"

namespace winclip::cache {
namespace fs = std::filesystem;
namespace {

// Shape, then values, of one array.
void hash_array(Sha256& h, const FloatArray& a) {
    h.update(a.shape.data(), a.shape.size() * sizeof(int64_t));
    h.update(a.values.data(), a.values.size() * sizeof(float));
}

// Every stored array in a fixed order, plus the geometry: the checksum covers
// exactly what a reader gets back.
std::string unit_checksum(const StoredImage& u) {
    Sha256 h;
    hash_array(h, u.embeddings.image_embedding);
    hash_array(h, u.embeddings.patch_tokens);
    for (const auto& w : u.embeddings.window_embeddings) hash_array(h, w);
    const auto& g = u.geometry;
    const double geometry[] = {static_cast<double>(g.width),
                               static_cast<double>(g.height),
                               g.crop_x0,
                               g.crop_y0,
                               g.crop_x1,
                               g.crop_y1};
    h.update(geometry, sizeof geometry);
    return h.hex_digest();
}

std::string array_checksum(const FloatArray& a) {
    Sha256 h;
    hash_array(h, a);
    return h.hex_digest();
}

}  // namespace

std::string image_unit_key(const std::string& embedding_key, const std::string& file_hash,
                           bool float16) {
    return sha256_hex(embedding_key + ":" + file_hash + ":" + (float16 ? "float16" : "float32"));
}

void round_to_half(FloatArray& a) {
    // GCC's _Float16 conversion rounds to nearest, ties to even (IEEE 754).
    for (float& v : a.values) v = static_cast<float>(static_cast<_Float16>(v));
}

EmbeddingCache::EmbeddingCache(std::string folder) : folder_(std::move(folder)) {
    for (const char* sub : {"shards", "index", "text"}) {
        std::error_code ec;
        fs::create_directories(fs::path(folder_) / sub, ec);
        if (ec)
            throw IoError(
                fmt::format("cannot create cache folder {}/{}: {}", folder_, sub, ec.message()));
    }
}

ScanReport EmbeddingCache::scan(bool verify, bool repair) {
    ScanReport report;
    unit_to_shard_.clear();
    std::map<std::string, bool> indexed_shards;
    std::vector<fs::path> entries;
    for (const auto& e : fs::directory_iterator(fs::path(folder_) / "index")) {
        const std::string name = e.path().filename().string();
        if (is_temporary_name(name) || e.path().extension() != ".json") continue;
        entries.push_back(e.path());
    }
    std::sort(entries.begin(), entries.end());
    auto drop = [&](const fs::path& p) {
        std::error_code ec;
        if (repair) fs::remove(p, ec);
    };
    for (const auto& entry_path : entries) {
        // An entry is only trusted in full: valid JSON with a shard name, size,
        // checksum and a list of unit keys. Anything else (a torn or hand-edited
        // file) is dropped; its shard becomes unindexed and its units are
        // recomputed.
        std::string shard;
        uint64_t size = 0;
        std::string sha256;
        std::vector<std::string> units;
        try {
            const auto entry = nlohmann::json::parse(io::read_file_bytes(entry_path.string()));
            const std::string relative = entry.at("shard").get<std::string>();
            if (relative.empty() || fs::path(relative).is_absolute() ||
                relative.find("..") != std::string::npos) {
                throw IoError("shard name '" + relative + "' is not inside the cache");
            }
            shard = (fs::path(folder_) / relative).string();
            size = entry.at("size").get<uint64_t>();
            sha256 = entry.at("sha256").get<std::string>();
            units = entry.at("units").get<std::vector<std::string>>();
        } catch (const std::exception& e) {
            log::warn("cache", "unreadable index entry {} ({}); {}", entry_path.string(), e.what(),
                      repair ? "removing it" : "ignoring it");
            drop(entry_path);
            continue;
        }
        indexed_shards[fs::path(shard).filename().string()] = true;
        if (!fs::is_regular_file(shard)) {
            log::warn("cache",
                      "index entry {} names a missing shard {}; its units will be recomputed",
                      entry_path.string(), shard);
            drop(entry_path);
            continue;
        }
        if (verify) {
            const bool size_ok = fs::file_size(shard) == size;
            const bool hash_ok = size_ok && io::file_sha256(shard) == sha256;
            if (!hash_ok) {
                log::warn(
                    "cache", "corrupt cache file {} ({}); {}its {} embeddings will be recomputed",
                    shard, size_ok ? "checksum mismatch" : "size differs from its index entry",
                    repair ? "removing it, " : "", units.size());
                report.corrupt.push_back(shard);
                drop(shard);
                drop(entry_path);
                continue;
            }
        }
        ++report.shards;
        for (const auto& key : units) {
            unit_to_shard_[key] = shard;
            ++report.units;
        }
    }
    for (const auto& e : fs::directory_iterator(fs::path(folder_) / "shards")) {
        const std::string name = e.path().filename().string();
        if (is_temporary_name(name) || indexed_shards.count(name)) continue;
        report.unindexed.push_back(e.path().string());
    }
    return report;
}

bool EmbeddingCache::has_text(const std::string& text_key) const {
    return fs::is_regular_file(text_path(text_key));
}

std::string EmbeddingCache::text_path(const std::string& text_key) const {
    return (fs::path(folder_) / "text" / (text_key + ".h5")).string();
}

std::string EmbeddingCache::write_images(const std::vector<std::string>& unit_keys,
                                         const std::vector<StoredImage>& units, bool float16) {
    WINCLIP_CHECK(unit_keys.size() == units.size() && !units.empty());
    std::string joined;
    for (const auto& k : unit_keys) joined += k + "\n";
    // Named by content: recomputing the same batch yields the same name.
    const std::string stem = "img-" + sha256_hex(joined).substr(0, 32);
    const std::string shard = (fs::path(folder_) / "shards" / (stem + ".h5")).string();

    publish_file(shard, [&](const std::string& temp) {
        io::H5File f(temp, io::H5File::Mode::kTruncate);
        f.write_attribute("/", "format", std::string("winclip-embedding-shard-1"));
        f.write_attribute("/", "dtype", std::string(float16 ? "float16" : "float32"));
        // Who wrote it (project version, git commit, host, date, HDF5): for
        // people inspecting a cache; never part of a key or a checksum.
        nlohmann::json context = build_context();
        context["hdf5_version"] = io::hdf5_version();
        f.write_attribute("/", "context", context.dump());
        for (size_t i = 0; i < units.size(); ++i) {
            StoredImage u = units[i];
            if (float16) {
                // Rounded here so the checksum covers the values a reader gets back.
                round_to_half(u.embeddings.image_embedding);
                round_to_half(u.embeddings.patch_tokens);
                for (auto& w : u.embeddings.window_embeddings) round_to_half(w);
            }
            const std::string g = "/units/" + unit_keys[i];
            auto put = [&](const std::string& name, const FloatArray& a) {
                if (float16) {
                    f.write_half(g + "/" + name, a);
                } else {
                    f.write(g + "/" + name, a);
                }
            };
            put("image_embedding", u.embeddings.image_embedding);
            put("patch_tokens", u.embeddings.patch_tokens);
            for (size_t w = 0; w < u.embeddings.window_embeddings.size(); ++w) {
                put("window_embeddings_" + std::to_string(w), u.embeddings.window_embeddings[w]);
            }
            f.write_attribute(g, "window_sets",
                              static_cast<int64_t>(u.embeddings.window_embeddings.size()));
            f.write_attribute(g, "width", static_cast<int64_t>(u.geometry.width));
            f.write_attribute(g, "height", static_cast<int64_t>(u.geometry.height));
            f.write_attribute(g, "crop_x0", u.geometry.crop_x0);
            f.write_attribute(g, "crop_y0", u.geometry.crop_y0);
            f.write_attribute(g, "crop_x1", u.geometry.crop_x1);
            f.write_attribute(g, "crop_y1", u.geometry.crop_y1);
            f.write_attribute(g, "checksum", unit_checksum(u));
        }
        f.close();
    });

    nlohmann::json entry;
    entry["shard"] = "shards/" + stem + ".h5";
    entry["size"] = static_cast<uint64_t>(fs::file_size(shard));
    entry["sha256"] = io::file_sha256(shard);
    entry["dtype"] = float16 ? "float16" : "float32";
    entry["units"] = unit_keys;
    publish_text((fs::path(folder_) / "index" / (stem + ".json")).string(), entry.dump(1) + "\n");
    for (const auto& k : unit_keys) unit_to_shard_[k] = shard;
    return shard;
}

StoredImage EmbeddingCache::read_image(const std::string& unit_key) const {
    const auto it = unit_to_shard_.find(unit_key);
    if (it == unit_to_shard_.end()) {
        throw IoError("embedding " + unit_key + " is not in the cache at " + folder_);
    }
    const std::string& shard = it->second;
    io::H5File f(shard, io::H5File::Mode::kRead);
    const std::string g = "/units/" + unit_key;
    if (!f.exists(g)) throw IoError("cache shard " + shard + " lacks embedding " + unit_key);
    StoredImage u;
    u.embeddings.image_embedding = f.read_float(g + "/image_embedding");
    u.embeddings.patch_tokens = f.read_float(g + "/patch_tokens");
    const auto sets = static_cast<int64_t>(f.read_attribute_double(g, "window_sets"));
    for (int64_t w = 0; w < sets; ++w) {
        u.embeddings.window_embeddings.push_back(
            f.read_float(g + "/window_embeddings_" + std::to_string(w)));
    }
    u.geometry.width = static_cast<int>(f.read_attribute_double(g, "width"));
    u.geometry.height = static_cast<int>(f.read_attribute_double(g, "height"));
    u.geometry.crop_x0 = f.read_attribute_double(g, "crop_x0");
    u.geometry.crop_y0 = f.read_attribute_double(g, "crop_y0");
    u.geometry.crop_x1 = f.read_attribute_double(g, "crop_x1");
    u.geometry.crop_y1 = f.read_attribute_double(g, "crop_y1");
    if (unit_checksum(u) != f.read_attribute_string(g, "checksum")) {
        throw IoError("corrupt cache file " + shard + ": checksum mismatch in embedding " +
                      unit_key + " (delete the file or rerun to recompute it)");
    }
    return u;
}

void EmbeddingCache::write_text(const std::string& text_key, const FloatArray& prototypes,
                                const std::string& description) {
    publish_file(text_path(text_key), [&](const std::string& temp) {
        io::H5File f(temp, io::H5File::Mode::kTruncate);
        f.write("/prototypes", prototypes);
        f.write_attribute("/", "format", std::string("winclip-text-prototypes-1"));
        f.write_attribute("/", "description", description);
        f.write_attribute("/", "checksum", array_checksum(prototypes));
        f.close();
    });
}

FloatArray EmbeddingCache::read_text(const std::string& text_key) const {
    const std::string path = text_path(text_key);
    io::H5File f(path, io::H5File::Mode::kRead);
    FloatArray a = f.read_float("/prototypes");
    if (array_checksum(a) != f.read_attribute_string("/", "checksum")) {
        throw IoError("corrupt cache file " + path + ": checksum mismatch in text prototypes");
    }
    return a;
}

}  // namespace winclip::cache
