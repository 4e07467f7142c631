// The embedding cache with synthetic embeddings: publish, index, reuse,
// checksum and corruption handling, float16 storage.
#include "cache/embedding_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "cache/atomic_file.h"
#include "core/error.h"
#include "io/file.h"
#include "io/hdf5.h"

namespace winclip::cache {
namespace {
namespace fs = std::filesystem;

fs::path fresh_folder(const std::string& name) {
    const fs::path p = fs::temp_directory_path() /
                       ("winclip-cache-test-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(p);
    return p;
}

FloatArray ramp(std::vector<int64_t> shape, float offset) {
    FloatArray a(std::move(shape));
    for (size_t i = 0; i < a.values.size(); ++i)
        a.values[i] = offset + 0.001f * static_cast<float>(i);
    return a;
}

StoredImage synthetic(float offset) {
    StoredImage s;
    s.embeddings.image_embedding = ramp({8}, offset);
    s.embeddings.patch_tokens = ramp({9, 6}, offset + 1);
    s.embeddings.window_embeddings = {ramp({4, 8}, offset + 2), ramp({1, 8}, offset + 3)};
    s.geometry = {900, 700, 100.0, 0.0, 800.0, 700.0};
    return s;
}

void expect_equal(const FloatArray& a, const FloatArray& b) {
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.values, b.values);  // exact: tolerance 0
}

TEST(EmbeddingCache, UnitKeyDependsOnEmbeddingKeyAndFileHash) {
    EXPECT_NE(image_unit_key("a", "x", false), image_unit_key("b", "x", false));
    EXPECT_NE(image_unit_key("a", "x", false), image_unit_key("a", "y", false));
    EXPECT_EQ(image_unit_key("a", "x", false).size(), 64u);
}

// A float16 run stores rounded values; a float32 run sharing the cache must
// not be served them, or its results would differ from a cold float32 run.
TEST(EmbeddingCache, UnitKeyDependsOnStorageDtype) {
    EXPECT_NE(image_unit_key("a", "x", /*float16=*/true), image_unit_key("a", "x", false));
}

TEST(EmbeddingCache, WrittenUnitsReadBackExactlyAndAreIndexedForLaterRuns) {
    const auto folder = fresh_folder("roundtrip");
    {
        EmbeddingCache cache(folder.string());
        cache.write_images({"k1", "k2"}, {synthetic(0), synthetic(5)}, /*float16=*/false);
        EXPECT_TRUE(cache.has_image("k1"));
    }
    EmbeddingCache later(folder.string());  // a later run sees them through the index
    EXPECT_FALSE(later.has_image("k1"));
    const auto report = later.scan(/*verify=*/true);
    EXPECT_EQ(report.shards, 1u);
    EXPECT_EQ(report.units, 2u);
    EXPECT_TRUE(report.corrupt.empty());
    const auto got = later.read_image("k2");
    const auto want = synthetic(5);
    expect_equal(got.embeddings.image_embedding, want.embeddings.image_embedding);
    expect_equal(got.embeddings.patch_tokens, want.embeddings.patch_tokens);
    ASSERT_EQ(got.embeddings.window_embeddings.size(), 2u);
    expect_equal(got.embeddings.window_embeddings[1], want.embeddings.window_embeddings[1]);
    EXPECT_EQ(got.geometry.width, 900);
    EXPECT_EQ(got.geometry.crop_x0, 100.0);
    EXPECT_THROW(later.read_image("missing"), IoError);
    // No temporary file is left behind.
    for (const auto& e : fs::recursive_directory_iterator(folder)) {
        EXPECT_FALSE(is_temporary_name(e.path().filename().string())) << e.path();
    }
    fs::remove_all(folder);
}

// A shard whose bytes change after publishing (a torn copy, a disk error) is
// found by the whole-file checksum, reported by path, removed with its index
// entry, and its units count as missing so the run recomputes them.
TEST(EmbeddingCache, CorruptShardIsDetectedReportedAndDropped) {
    const auto folder = fresh_folder("corrupt");
    EmbeddingCache cache(folder.string());
    const std::string shard = cache.write_images({"k1"}, {synthetic(0)}, false);
    cache.write_images({"k2"}, {synthetic(1)}, false);
    {
        std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(fs::file_size(shard) / 2));
        f.put('\x5a').put('\x5a').put('\x5a');
    }
    EmbeddingCache again(folder.string());
    const auto report = again.scan(/*verify=*/true);
    ASSERT_EQ(report.corrupt.size(), 1u);
    EXPECT_EQ(report.corrupt[0], shard);
    EXPECT_FALSE(again.has_image("k1"));
    EXPECT_TRUE(again.has_image("k2"));
    EXPECT_FALSE(fs::exists(shard));
    fs::remove_all(folder);
}

// Index entries that parse as JSON but are not an entry (a hand edit, another
// tool's file) are dropped like unparseable ones; they must not stop the run.
TEST(EmbeddingCache, MalformedIndexEntriesAreDroppedNotFatal) {
    const auto folder = fresh_folder("malformed");
    EmbeddingCache cache(folder.string());
    cache.write_images({"k1"}, {synthetic(0)}, false);
    const std::vector<std::string> bodies = {
        "[1, 2]",
        "{}",
        "{\"shard\": 3}",
        "",
        "{\"shard\": \"../../etc/passwd\", \"size\": 1, "
        "\"sha256\": \"x\", \"units\": [\"k9\"]}",
        "{\"shard\": \"shards/x.h5\", \"size\": 1, \"sha256\": \"x\", \"units\": 5}"};
    for (size_t i = 0; i < bodies.size(); ++i) {
        std::ofstream(folder / "index" / ("bad-" + std::to_string(i) + ".json")) << bodies[i];
    }
    EmbeddingCache again(folder.string());
    ScanReport report;
    ASSERT_NO_THROW(report = again.scan(/*verify=*/true));
    EXPECT_TRUE(again.has_image("k1"));
    EXPECT_FALSE(again.has_image("k9"));
    EXPECT_EQ(report.shards, 1u);
    for (size_t i = 0; i < bodies.size(); ++i) {
        EXPECT_FALSE(fs::exists(folder / "index" / ("bad-" + std::to_string(i) + ".json"))) << i;
    }
    fs::remove_all(folder);
}

// `winclip plan` is a dry run: it reports a corrupt shard but leaves it.
TEST(EmbeddingCache, ScanWithoutRepairReportsButKeepsFiles) {
    const auto folder = fresh_folder("dryrun");
    EmbeddingCache cache(folder.string());
    const std::string shard = cache.write_images({"k1"}, {synthetic(0)}, false);
    fs::resize_file(shard, fs::file_size(shard) / 2);
    EmbeddingCache again(folder.string());
    const auto report = again.scan(/*verify=*/true, /*repair=*/false);
    ASSERT_EQ(report.corrupt.size(), 1u);
    EXPECT_FALSE(again.has_image("k1"));
    EXPECT_TRUE(fs::exists(shard));
    EXPECT_EQ(std::distance(fs::directory_iterator(folder / "index"), fs::directory_iterator{}), 1);
    fs::remove_all(folder);
}

// Shards say who wrote them, for people inspecting a cache.
TEST(EmbeddingCache, ShardsCarryTheirContext) {
    const auto folder = fresh_folder("context");
    EmbeddingCache cache(folder.string());
    const std::string shard = cache.write_images({"k1"}, {synthetic(0)}, false);
    io::H5File f(shard, io::H5File::Mode::kRead);
    const std::string context = f.read_attribute_string("/", "context");
    EXPECT_NE(context.find("\"git_commit\""), std::string::npos) << context;
    EXPECT_NE(context.find("\"hdf5_version\""), std::string::npos) << context;
    f.close();
    fs::remove_all(folder);
}

TEST(EmbeddingCache, TruncatedShardIsDetected) {
    const auto folder = fresh_folder("truncated");
    EmbeddingCache cache(folder.string());
    const std::string shard = cache.write_images({"k1"}, {synthetic(0)}, false);
    fs::resize_file(shard, fs::file_size(shard) / 3);
    EmbeddingCache again(folder.string());
    const auto report = again.scan(/*verify=*/true);
    EXPECT_EQ(report.corrupt.size(), 1u);
    EXPECT_FALSE(again.has_image("k1"));
    fs::remove_all(folder);
}

// Without a full verification, the per-unit checksum still catches altered
// values on read and names the file.
TEST(EmbeddingCache, ReadChecksumNamesTheFile) {
    const auto folder = fresh_folder("readsum");
    EmbeddingCache cache(folder.string());
    const std::string shard = cache.write_images({"k1"}, {synthetic(0)}, false);
    {
        // Overwrite the stored patch tokens with different but valid values.
        io::H5File f(shard, io::H5File::Mode::kReadWrite);
        f.write("/units/k1/patch_tokens", ramp({9, 6}, 42));
        f.close();
    }
    try {
        cache.read_image("k1");
        FAIL() << "expected IoError";
    } catch (const IoError& e) {
        EXPECT_NE(std::string(e.what()).find(shard), std::string::npos) << e.what();
    }
    fs::remove_all(folder);
}

// float16 storage returns each value rounded to the nearest half: relative
// error at most 2^-11 for normal numbers, and the file is smaller.
TEST(EmbeddingCache, Float16RoundTripHalvesTheSize) {
    const auto folder = fresh_folder("half");
    EmbeddingCache cache(folder.string());
    StoredImage big = synthetic(0.3f);
    big.embeddings.patch_tokens = ramp({225, 96}, 0.3f);
    const std::string f32 = cache.write_images({"a"}, {big}, false);
    const std::string f16 = cache.write_images({"b"}, {big}, true);
    const auto got = cache.read_image("b").embeddings.patch_tokens;
    ASSERT_EQ(got.values.size(), big.embeddings.patch_tokens.values.size());
    for (size_t i = 0; i < got.values.size(); ++i) {
        const float want = big.embeddings.patch_tokens.values[i];
        EXPECT_LE(std::fabs(got.values[i] - want), std::ldexp(std::fabs(want), -11)) << i;
    }
    FloatArray rounded = big.embeddings.patch_tokens;
    round_to_half(rounded);
    EXPECT_EQ(got.values, rounded.values);  // exactly the rounded values
    EXPECT_LT(fs::file_size(f16), 0.6 * static_cast<double>(fs::file_size(f32)));
    fs::remove_all(folder);
}

TEST(EmbeddingCache, TextPrototypesRoundTripAndDetectCorruption) {
    const auto folder = fresh_folder("text");
    EmbeddingCache cache(folder.string());
    const FloatArray p = ramp({2, 16}, 0.5f);
    EXPECT_FALSE(cache.has_text("t"));
    cache.write_text("t", p, "test");
    EXPECT_TRUE(cache.has_text("t"));
    expect_equal(cache.read_text("t"), p);
    {
        io::H5File f(cache.text_path("t"), io::H5File::Mode::kReadWrite);
        f.write("/prototypes", ramp({2, 16}, 0.7f));
        f.close();
    }
    EXPECT_THROW(cache.read_text("t"), IoError);
    fs::remove_all(folder);
}

TEST(AtomicFile, FailedWriteLeavesNoFile) {
    const auto folder = fresh_folder("atomic");
    const std::string path = (folder / "x.txt").string();
    EXPECT_THROW(publish_file(path, [](const std::string&) { throw IoError("boom"); }), IoError);
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::is_empty(folder));
    publish_text(path, "hello\n");
    const std::vector<uint8_t> bytes = io::read_file_bytes(path);
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "hello\n");
    fs::remove_all(folder);
}

}  // namespace
}  // namespace winclip::cache
