#include "clip/checkpoint.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <climits>
#include <cstdio>
#include <fstream>

#include "clip/model.h"
#include "core/error.h"

namespace winclip::clip {
namespace {

const std::string kDemo = std::string(WINCLIP_REPO_ROOT) + "/models/demo/tinyclip-vit-240";

std::string temp_path(const std::string& name) {
    return ::testing::TempDir() + "winclip_checkpoint_test_" + name;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void put_le(std::string& s, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

// A stored (uncompressed) zip archive, written the way torch.save does.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
    std::string out, directory;
    for (const auto& [name, data] : entries) {
        const uint32_t crc = static_cast<uint32_t>(::crc32(
            0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
        const uint64_t offset = out.size();
        put_le(out, 0x04034b50, 4);
        put_le(out, 20, 2);  // version needed
        put_le(out, 0, 2);   // flags
        put_le(out, 0, 2);   // stored
        put_le(out, 0, 4);   // time, date
        put_le(out, crc, 4);
        put_le(out, data.size(), 4);
        put_le(out, data.size(), 4);
        put_le(out, name.size(), 2);
        put_le(out, 0, 2);
        out += name + data;
        put_le(directory, 0x02014b50, 4);
        put_le(directory, 20, 2);
        put_le(directory, 20, 2);
        put_le(directory, 0, 2);
        put_le(directory, 0, 2);
        put_le(directory, 0, 4);
        put_le(directory, crc, 4);
        put_le(directory, data.size(), 4);
        put_le(directory, data.size(), 4);
        put_le(directory, name.size(), 2);
        put_le(directory, 0, 2);  // extra
        put_le(directory, 0, 2);  // comment
        put_le(directory, 0, 2);  // disk
        put_le(directory, 0, 2);  // internal attributes
        put_le(directory, 0, 4);  // external attributes
        put_le(directory, offset, 4);
        directory += name;
    }
    const uint64_t dir_offset = out.size();
    out += directory;
    put_le(out, 0x06054b50, 4);
    put_le(out, 0, 4);
    put_le(out, entries.size(), 2);
    put_le(out, entries.size(), 2);
    put_le(out, directory.size(), 4);
    put_le(out, dir_offset, 4);
    put_le(out, 0, 2);
    return out;
}

// Pickle pieces, protocol 2, as torch.save emits them.
struct PickleWriter {
    std::string p = "\x80\x02";
    void global(const std::string& module, const std::string& name) {
        p += "c" + module + "\n" + name + "\n";
    }
    void str(const std::string& s) {
        p += 'X';
        put_le(p, s.size(), 4);
        p += s;
    }
    void integer(int64_t v) {
        if (v >= INT32_MIN && v <= INT32_MAX) {
            p += 'J';  // BININT
            put_le(p, static_cast<uint64_t>(v), 4);
        } else {
            p += "\x8a\x08";  // LONG1 of 8 bytes, as pickle writes wider ints
            put_le(p, static_cast<uint64_t>(v), 8);
        }
    }
    void int_tuple(const std::vector<int64_t>& v) {
        p += '(';
        for (int64_t x : v) integer(x);
        p += 't';
    }
    // _rebuild_tensor_v2(storage <key>, offset, size, stride, False, OrderedDict())
    void tensor(const std::string& storage_type, const std::string& key, int64_t numel,
                int64_t offset, const std::vector<int64_t>& size,
                const std::vector<int64_t>& stride) {
        global("torch._utils", "_rebuild_tensor_v2");
        p += '(';
        p += '(';
        str("storage");
        global("torch", storage_type);
        str(key);
        str("cpu");
        integer(numel);
        p += 't';
        p += 'Q';
        integer(offset);
        int_tuple(size);
        int_tuple(stride);
        p += '\x89';
        global("collections", "OrderedDict");
        p += ")R";
        p += 't';
        p += 'R';
    }
};

// Writes a torch.save-like archive of float32 tensors, optionally with every
// key prefixed and the dict wrapped under "state_dict".
std::string make_torch_file(const StateDict& state, const std::string& key_prefix, bool wrap) {
    PickleWriter w;
    std::vector<std::pair<std::string, std::string>> entries;
    if (wrap) {  // {"epoch": 3, "state_dict": OrderedDict(...)}
        w.p += "}(";
        w.str("epoch");
        w.integer(3);
        w.str("state_dict");
    }
    w.global("collections", "OrderedDict");
    w.p += ")R(";
    int index = 0;
    for (const auto& [name, tensor] : state) {
        const torch::Tensor t = tensor.to(torch::kFloat).contiguous();
        const std::string key = std::to_string(index++);
        std::vector<int64_t> stride(t.strides().begin(), t.strides().end());
        w.str(key_prefix + name);
        w.tensor("FloatStorage", key, t.numel(), 0, t.sizes().vec(), stride);
        entries.emplace_back("archive/data/" + key,
                             std::string(static_cast<const char*>(t.data_ptr()), t.numel() * 4));
    }
    w.p += 'u';
    if (wrap) w.p += 'u';
    w.p += '.';
    entries.insert(entries.begin(), {"archive/data.pkl", w.p});
    entries.emplace_back("archive/version", "3\n");
    return make_zip(entries);
}

template <typename F>
std::string model_error_text(F f) {
    try {
        f();
    } catch (const ModelError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no ModelError thrown";
    return "";
}

const StateDict& demo_safetensors() {
    static const StateDict s = load_state_dict(kDemo + ".safetensors");
    return s;
}

bool same(const StateDict& a, const StateDict& b) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, t] : a) {
        auto it = b.find(k);
        if (it == b.end() || !torch::equal(t.to(torch::kFloat), it->second.to(torch::kFloat)))
            return false;
    }
    return true;
}

// The shipped checkpoint as torch.save wrote it (OrderedDict with _metadata,
// float16 storages) and as safetensors hold the same tensors, bit for bit.
TEST(Checkpoint, BinAndSafetensorsLoadIdenticalTensors) {
    const StateDict bin = load_state_dict(kDemo + ".bin");
    const StateDict& st = demo_safetensors();
    ASSERT_EQ(bin.size(), st.size());
    for (const auto& [k, t] : bin) {
        ASSERT_TRUE(st.count(k)) << k;
        EXPECT_EQ(t.scalar_type(), torch::kHalf) << k;
        EXPECT_TRUE(torch::equal(t, st.at(k))) << k;
    }
    EXPECT_TRUE(bin.count("visual.transformer.resblocks.0.attn.in_proj_weight"));
    EXPECT_EQ(bin.at("logit_scale").dim(), 0);
    EXPECT_EQ(state_dict_sha256(bin), state_dict_sha256(st));
}

// The hash is over float32 values, so storing the same values in float32
// does not change it, while changing one value does.
TEST(Checkpoint, HashIsDtypeIndependentAndValueSensitive) {
    StateDict f32;
    for (const auto& [k, t] : demo_safetensors()) f32[k] = t.to(torch::kFloat);
    EXPECT_EQ(state_dict_sha256(f32), state_dict_sha256(demo_safetensors()));
    f32["ln_final.bias"] = f32["ln_final.bias"].clone();
    f32["ln_final.bias"][0] += 1.0f;
    EXPECT_NE(state_dict_sha256(f32), state_dict_sha256(demo_safetensors()));
}

TEST(Checkpoint, ModulePrefixAndStateDictWrapperAreAccepted) {
    const std::string path = temp_path("wrapped.pt");
    write_file(path, make_torch_file(demo_safetensors(), "module.", /*wrap=*/true));
    EXPECT_TRUE(same(load_state_dict(path), demo_safetensors()));
    write_file(path, make_torch_file(demo_safetensors(), "", /*wrap=*/false));
    EXPECT_TRUE(same(load_state_dict(path), demo_safetensors()));
    std::remove(path.c_str());
}

// A view with a storage offset and transposed strides, from a float16
// storage shared by two tensors.
TEST(Checkpoint, StridedViewsOfSharedStorage) {
    torch::Tensor storage = torch::arange(10, torch::kFloat).to(torch::kHalf);
    PickleWriter w;
    w.global("collections", "OrderedDict");
    w.p += ")R(";
    w.str("a");
    w.tensor("HalfStorage", "0", 10, 2, {2, 3}, {1, 2});  // transposed [3, 2] starting at 2
    w.str("b");
    w.tensor("HalfStorage", "0", 10, 8, {2}, {1});
    w.p += "u.";
    const std::string path = temp_path("strided.pt");
    write_file(path, make_zip({{"archive/data.pkl", w.p},
                               {"archive/data/0",
                                std::string(static_cast<const char*>(storage.data_ptr()), 20)}}));
    const StateDict s = load_state_dict(path);
    const torch::Tensor a = s.at("a").to(torch::kFloat);
    EXPECT_TRUE(torch::equal(a, torch::tensor({{2.f, 4.f, 6.f}, {3.f, 5.f, 7.f}})));
    EXPECT_TRUE(torch::equal(s.at("b").to(torch::kFloat), torch::tensor({8.f, 9.f})));

    // A view reaching past its storage is refused, naming the shapes.
    PickleWriter bad;
    bad.global("collections", "OrderedDict");
    bad.p += ")R(";
    bad.str("a");
    bad.tensor("HalfStorage", "0", 10, 5, {2, 3}, {3, 1});
    bad.p += "u.";
    write_file(path, make_zip({{"archive/data.pkl", bad.p},
                               {"archive/data/0",
                                std::string(static_cast<const char*>(storage.data_ptr()), 20)}}));
    const std::string msg = model_error_text([&] { load_state_dict(path); });
    EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
    std::remove(path.c_str());
}

// Loading runs no code: a pickle naming os.system is rejected before any call.
TEST(Checkpoint, ForbiddenGlobalIsRefused) {
    PickleWriter w;
    w.global("os", "system");
    w.str("echo pwned");
    w.p += "\x85R.";
    const std::string path = temp_path("evil.pt");
    write_file(path, make_zip({{"evil/data.pkl", w.p}}));
    const std::string msg = model_error_text([&] { load_state_dict(path); });
    EXPECT_NE(msg.find("os.system"), std::string::npos) << msg;
    std::remove(path.c_str());
}

TEST(Checkpoint, LegacyFormatIsAClearError) {
    // torch.save(..., _use_new_zipfile_serialization=False) starts with a
    // pickled magic number.
    const std::string path = temp_path("legacy.pt");
    write_file(path, std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15));
    const std::string msg = model_error_text([&] { load_state_dict(path); });
    EXPECT_NE(msg.find("legacy"), std::string::npos) << msg;
    std::remove(path.c_str());
}

TEST(Checkpoint, TruncatedFilesAreModelErrors) {
    for (const char* ext : {".bin", ".safetensors"}) {
        const std::string full = read_file(kDemo + ext);
        const std::string path = temp_path(std::string("truncated") + ext);
        write_file(path, full.substr(0, full.size() / 2));
        const std::string msg = model_error_text([&] { load_state_dict(path); });
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
        std::remove(path.c_str());
    }
}

TEST(Checkpoint, CorruptedStorageFailsItsChecksum) {
    std::string bytes = read_file(kDemo + ".bin");
    // Flip a byte well inside the tensor data (past data.pkl, before the directory).
    bytes[bytes.size() / 2] ^= 0x5a;
    const std::string path = temp_path("corrupt.bin");
    write_file(path, bytes);
    const std::string msg = model_error_text([&] { load_state_dict(path); });
    EXPECT_NE(msg.find("CRC"), std::string::npos) << msg;
    std::remove(path.c_str());
}

TEST(Checkpoint, MissingFileIsAnIoError) {
    EXPECT_THROW(load_state_dict("/nonexistent/model.bin"), IoError);
}

TEST(Checkpoint, NotACheckpointIsAModelError) {
    const std::string path = temp_path("text.bin");
    write_file(path, "this is not a checkpoint at all");
    EXPECT_THROW(load_state_dict(path), ModelError);
    std::remove(path.c_str());
}

// Loading into the model: each problem names the tensor and both shapes.
TEST(CheckpointIntoModel, MissingMisshapenAndUnexpectedTensorsAreNamed) {
    const ModelConfig config = load_model_config(kDemo + ".json");
    EXPECT_NO_THROW(ClipModel(config, demo_safetensors(), "demo"));

    StateDict missing = demo_safetensors();
    missing.erase("visual.proj");
    std::string msg = model_error_text([&] { ClipModel(config, missing, "demo"); });
    EXPECT_NE(msg.find("missing tensor visual.proj (model expects [128, 64])"), std::string::npos)
        << msg;

    StateDict misshapen = demo_safetensors();
    misshapen["visual.transformer.resblocks.1.mlp.c_fc.weight"] = torch::zeros({512, 127});
    msg = model_error_text([&] { ClipModel(config, misshapen, "demo"); });
    EXPECT_NE(msg.find("visual.transformer.resblocks.1.mlp.c_fc.weight has shape [512, 127] in the "
                       "checkpoint but the model expects [512, 128]"),
              std::string::npos)
        << msg;

    StateDict unexpected = demo_safetensors();
    unexpected["visual.attn_pool.query"] = torch::zeros({256, 64});
    msg = model_error_text([&] { ClipModel(config, unexpected, "demo"); });
    EXPECT_NE(msg.find("unexpected tensor visual.attn_pool.query with shape [256, 64]"),
              std::string::npos)
        << msg;
}

// The same checks through a file on disk, as a user meets them.
TEST(CheckpointIntoModel, BrokenFileOnDiskNamesTheTensor) {
    StateDict broken = demo_safetensors();
    broken.erase("token_embedding.weight");
    const std::string path = temp_path("missing.pt");
    write_file(path, make_torch_file(broken, "", false));
    const std::string msg = model_error_text([&] { ClipModel::load(path, kDemo + ".json"); });
    EXPECT_NE(msg.find("missing tensor token_embedding.weight (model expects [49408, 64])"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    std::remove(path.c_str());
}

// ---------------------------------------------------------------------------
// Adversarial files: every one must be a ModelError naming the file, never a
// crash, a hang or an allocation sized by a number the file claims.

// Expects a ModelError naming the file and containing `needle`.
void expect_bad_file(const std::string& name, const std::string& bytes,
                     const std::string& needle) {
    const std::string path = temp_path(name);
    write_file(path, bytes);
    const std::string msg = model_error_text([&] { load_state_dict(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    std::remove(path.c_str());
}

// A pickle of one tensor "w" over storage "0", whose zip entry holds `data`.
std::string one_tensor_file(const std::string& storage_type, int64_t numel, int64_t offset,
                            const std::vector<int64_t>& size, const std::vector<int64_t>& stride,
                            const std::string& data) {
    PickleWriter w;
    w.p += '}';
    w.str("w");
    w.tensor(storage_type, "0", numel, offset, size, stride);
    w.p += "s.";
    return make_zip({{"archive/data.pkl", w.p}, {"archive/data/0", data}});
}

// Appends zip64 end-of-directory records that claim a directory of `dir_size`
// bytes at `dir_offset`, followed by a classic record pointing at them.
std::string with_zip64_directory(std::string zip, uint64_t dir_size, uint64_t dir_offset) {
    zip.resize(zip.size() - 22);  // drop the classic record
    const uint64_t rec_pos = zip.size();
    put_le(zip, 0x06064b50, 4);
    put_le(zip, 44, 8);
    put_le(zip, 45, 2);
    put_le(zip, 45, 2);
    put_le(zip, 0, 4);
    put_le(zip, 0, 4);
    put_le(zip, 1, 8);
    put_le(zip, 1, 8);
    put_le(zip, dir_size, 8);
    put_le(zip, dir_offset, 8);
    put_le(zip, 0x07064b50, 4);
    put_le(zip, 0, 4);
    put_le(zip, rec_pos, 8);
    put_le(zip, 1, 4);
    put_le(zip, 0x06054b50, 4);
    put_le(zip, 0, 4);
    put_le(zip, 0xffff, 2);
    put_le(zip, 0xffff, 2);
    put_le(zip, 0xffffffff, 4);
    put_le(zip, 0xffffffff, 4);
    put_le(zip, 0, 2);
    return zip;
}

TEST(CheckpointAdversarial, HugeClaimedDirectoryIsNotAllocated) {
    const std::string zip = make_zip({{"archive/data.pkl", "\x80\x02}."}});
    expect_bad_file("hugedir.pt", with_zip64_directory(zip, uint64_t{1} << 62, 0), "truncated");
}

TEST(CheckpointAdversarial, EntryLargerThanTheFileIsRefused) {
    // A zip64 extra field claims data.pkl holds 2^50 bytes.
    std::string zip = make_zip({{"archive/data.pkl", "\x80\x02}."}});
    const size_t dir = zip.find("PK\x01\x02");
    ASSERT_NE(dir, std::string::npos);
    std::string central = zip.substr(dir, zip.size() - 22 - dir);
    for (int i = 0; i < 8; ++i) central[20 + i] = '\xff';  // both sizes: see zip64 field
    central[30] = 20;                                       // extra length
    std::string extra;
    put_le(extra, 0x0001, 2);
    put_le(extra, 16, 2);
    put_le(extra, uint64_t{1} << 50, 8);
    put_le(extra, uint64_t{1} << 50, 8);
    central += extra;
    std::string out = zip.substr(0, dir) + central;
    put_le(out, 0x06054b50, 4);
    put_le(out, 0, 4);
    put_le(out, 1, 2);
    put_le(out, 1, 2);
    put_le(out, central.size(), 4);
    put_le(out, dir, 4);
    put_le(out, 0, 2);
    expect_bad_file("hugeentry.pt", out, "archive/data.pkl");
}

TEST(CheckpointAdversarial, StorageSizeOverflowIsRefused) {
    // 2^62 floats are 2^64 bytes, which wraps to the empty entry's 0.
    expect_bad_file("numel.pt",
                    one_tensor_file("FloatStorage", int64_t{1} << 62, 0, {1}, {1}, ""),
                    "archive/data/0");
}

TEST(CheckpointAdversarial, TensorViewLargerThanItsStorageIsRefused) {
    const std::string four(16, '\0');
    // Zero strides would repeat 4 values 2^62 times.
    expect_bad_file("bigview.pt",
                    one_tensor_file("FloatStorage", 4, 0, {int64_t{1} << 31, int64_t{1} << 31},
                                    {0, 0}, four),
                    "exceeds its storage");
    // (size - 1) * stride wraps around int64 to land inside the storage.
    expect_bad_file("wrapview.pt",
                    one_tensor_file("FloatStorage", 4, 0, {3, 3},
                                    {int64_t{1} << 62, int64_t{1} << 62}, four),
                    "exceeds its storage");
}

TEST(CheckpointAdversarial, DeeplyNestedPickleIsRefusedWithoutRecursion) {
    // One million nested empty tuples: freeing them recursively overflows the stack.
    std::string p = "\x80\x02";
    p += std::string(1000000, '(');
    p += std::string(1000000, 't');
    p += '.';
    expect_bad_file("deep.pt", make_zip({{"archive/data.pkl", p}}), "tuple");
    // A list that contains itself.
    expect_bad_file("cycle.pt", make_zip({{"archive/data.pkl", std::string("\x80\x02]q\x00h\x00" "a.", 9)}}),
                    "list");
}

TEST(CheckpointAdversarial, MalformedPickleOpcodesAreModelErrors) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"\x80\x02(t(.", "STOP"},                // MARK left open
        {"\x80\x02t.", "MARK"},                  // TUPLE without MARK
        {"\x80\x02h\x07.", "memo entry 7"},      // BINGET of an unset index
        {"\x80\x02j\xff\xff\xff\xff.", "memo"},  // LONG_BINGET far out of range
        {"\x80\x02q\x00.", "underflow"},         // BINPUT on an empty stack
        {"\x80\x02}(K\x01" "d.", "odd"},         // DICT with a key but no value
        {"\x80\x02X\xff\xff\xff\x7f", "ends early"},
        {"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff", "ends early"},
        {"\x80\x02" "cposix\nsystem\n.", "posix.system"},
        {"\x80\x02\x8c\x08" "builtins\x8c\x04" "eval\x93.", "builtins.eval"},
    };
    for (const auto& [pickle, needle] : cases) {
        expect_bad_file("ops.pt", make_zip({{"archive/data.pkl", pickle}}), needle);
    }
}

TEST(CheckpointAdversarial, DuplicateKeysAreRefused) {
    PickleWriter w;
    w.p += "}(";
    w.str("w");
    w.tensor("FloatStorage", "0", 1, 0, {1}, {1});
    w.str("w");
    w.tensor("FloatStorage", "0", 1, 0, {1}, {1});
    w.p += "u.";
    expect_bad_file("dupkey.pt",
                    make_zip({{"archive/data.pkl", w.p}, {"archive/data/0", std::string(4, '\0')}}),
                    "twice");
}

TEST(CheckpointAdversarial, StorageNamedWithTwoTypesIsRefused) {
    // The same 8 bytes as 2 floats for "a", then as 4 halves for "b".
    PickleWriter w;
    w.p += "}(";
    w.str("a");
    w.tensor("FloatStorage", "0", 2, 0, {2}, {1});
    w.str("b");
    w.tensor("HalfStorage", "0", 4, 0, {4}, {1});
    w.p += "u.";
    expect_bad_file("twotypes.pt",
                    make_zip({{"archive/data.pkl", w.p}, {"archive/data/0", std::string(8, '\0')}}),
                    "HalfStorage");
}

std::string safetensors_file(const std::string& header, const std::string& data) {
    std::string out;
    put_le(out, header.size(), 8);
    return out + header + data;
}

TEST(CheckpointAdversarial, MalformedSafetensorsAreModelErrors) {
    const std::string eight(8, '\0');
    const std::vector<std::pair<std::string, std::string>> cases = {
        // A shape whose product wraps to 0 bytes.
        {safetensors_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],)"
                          R"("data_offsets":[0,0]}})",
                          ""),
         "shape"},
        {safetensors_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", eight),
         "shape"},
        {safetensors_file(R"({"w":{"dtype":"F32","shape":7,"data_offsets":[0,28]}})", eight),
         "shape"},
        {safetensors_file(R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}})", eight),
         "dtype"},
        {safetensors_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight),
         "truncated"},
        {safetensors_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", eight),
         "data_offsets"},
        {safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          eight),
         "overlap"},
        {safetensors_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          eight),
         "twice"},
        {safetensors_file("{not json}", eight), "not JSON"},
        {safetensors_file(R"({"w":{"dtype":"F32","data_offsets":[0,0],"shape":)" +
                              std::string(1000000, '[') + std::string(1000000, ']') + "}}",
                          ""),
         "nest"},
        {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{", 9), "does not fit"},
    };
    for (const auto& [bytes, needle] : cases) {
        SCOPED_TRACE(bytes.substr(8, 120));
        expect_bad_file("bad.safetensors", bytes, needle);
    }
}

}  // namespace
}  // namespace winclip::clip
