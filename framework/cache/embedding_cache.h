// The content-addressed embedding cache (HDF5). One folder serves every run
// and experiment that points at it:
//
//   <folder>/shards/img-<hash>.h5   image embeddings of a batch of images, one
//                                   group per unit: /units/<unit key>/...
//   <folder>/index/img-<hash>.json  the shard's index entry: its units, byte
//                                   size and SHA-256 of the whole file
//   <folder>/text/<text key>.h5     one class's [2, D] text prototypes
//
// A unit key is SHA-256 over the pipeline's image_embedding_key() (weights,
// model config, preprocessing, windows, patch-token layer), the SHA-256 of the
// image file's bytes and the storage dtype, so any change to what would be
// stored gives a new key and a stale entry can never be served (a float32 run
// never reads values a float16 run rounded). Every rank writes its own shards; each
// file is published atomically (atomic_file.h), then its index entry, so a
// kill leaves at worst an unindexed shard that is recomputed. Each unit and
// each text file carries a SHA-256 checksum attribute over its stored values,
// checked on every read. Not thread-safe (HDF5 is built serial): one thread
// per process uses it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/array.h"
#include "winclip/pipeline.h"

namespace winclip::cache {

// SHA-256 over "<embedding key>:<file hash>:<float16|float32>".
std::string image_unit_key(const std::string& embedding_key, const std::string& file_hash,
                           bool float16);

struct StoredImage {
    method::ImageEmbeddings embeddings;
    method::ImageGeometry geometry;  // needed to upsample maps to the image's own size
};

// What scan() found.
struct ScanReport {
    size_t shards = 0;                   // shards listed and verified
    size_t units = 0;                    // units they hold
    std::vector<std::string> corrupt;    // shard paths that failed verification (removed on repair)
    std::vector<std::string> unindexed;  // shard files without an index entry (left alone)
};

// Rounds every value to the nearest IEEE half (ties to even), back in float32:
// what a float16 cache stores and returns.
void round_to_half(FloatArray& a);

class EmbeddingCache {
  public:
    // Creates the folder layout if missing.
    explicit EmbeddingCache(std::string folder);

    const std::string& folder() const { return folder_; }

    // Reads every index entry; an entry that is not valid JSON of the expected
    // form is logged by path and counts as missing. With `verify`, also
    // re-hashes each listed shard and compares size and SHA-256 with its
    // entry: a truncated or altered shard is logged by path and its units
    // count as missing (so they are recomputed). With `repair`, such shards and
    // entries are also deleted; without it (a dry run such as `winclip plan`)
    // nothing on disk changes. Only one rank should verify.
    ScanReport scan(bool verify, bool repair = true);

    bool has_image(const std::string& unit_key) const { return unit_to_shard_.count(unit_key) > 0; }
    bool has_text(const std::string& text_key) const;
    size_t image_count() const { return unit_to_shard_.size(); }

    // Writes one shard with these units (parallel vectors), publishes it and
    // its index entry, and adds the units to this object's index. Returns the
    // shard's path.
    std::string write_images(const std::vector<std::string>& unit_keys,
                             const std::vector<StoredImage>& units, bool float16);

    // Reads one unit; IoError naming the shard when it is missing, unreadable
    // or its checksum does not match.
    StoredImage read_image(const std::string& unit_key) const;

    // Text prototypes [2, D] float32 (row 0 normal, row 1 anomalous).
    void write_text(const std::string& text_key, const FloatArray& prototypes,
                    const std::string& description);
    FloatArray read_text(const std::string& text_key) const;

    std::string text_path(const std::string& text_key) const;

  private:
    std::string folder_;
    std::map<std::string, std::string> unit_to_shard_;  // unit key -> shard path
};

}  // namespace winclip::cache
