#include "clip/checkpoint.h"

#include <gtest/gtest.h>
#include <zlib.h>

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
        p += 'J';
        put_le(p, static_cast<uint64_t>(v), 4);
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

}  // namespace
}  // namespace winclip::clip
