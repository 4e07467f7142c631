#include "clip/model_config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <tuple>

#include "core/error.h"

namespace winclip::clip {
namespace {

const std::string kRoot = WINCLIP_REPO_ROOT;

// Expects a ModelError whose message contains `needle`.
template <typename F>
void expect_model_error(F f, const std::string& needle) {
    try {
        f();
        ADD_FAILURE() << "no ModelError; expected one naming " << needle;
    } catch (const ModelError& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(ModelConfig, ReadsDemoConfigWithOpenClipDefaults) {
    const ModelConfig c = load_model_config(kRoot + "/models/demo/tinyclip-vit-240.json");
    EXPECT_EQ(c.embed_dim, 64);
    EXPECT_FALSE(c.quick_gelu);
    EXPECT_EQ(c.vision.image_size, 240);
    EXPECT_EQ(c.vision.patch_size, 16);
    EXPECT_EQ(c.vision.grid_size(), 15);
    EXPECT_EQ(c.vision.width, 128);
    EXPECT_EQ(c.vision.head_width, 64);
    EXPECT_EQ(c.vision.heads(), 2);
    EXPECT_EQ(c.vision.mlp_width(), 512);
    EXPECT_EQ(c.text.context_length, 77);
    EXPECT_EQ(c.text.vocab_size, 49408);
    EXPECT_EQ(c.text.width, 64);
    EXPECT_EQ(c.text.heads, 2);
    EXPECT_EQ(c.text.layers, 2);
}

TEST(ModelConfig, ReadsEveryShippedVitConfig) {
    for (const char* name : {"ViT-B-16-plus-240", "ViT-B-16", "ViT-B-32", "ViT-L-14"}) {
        const ModelConfig c = load_model_config(kRoot + "/configs/backbones/" + name + ".json");
        EXPECT_GT(c.vision.layers, 0) << name;
    }
    const ModelConfig c = load_model_config(kRoot + "/configs/backbones/ViT-B-16-plus-240.json");
    EXPECT_EQ(c.vision.width, 896);
    EXPECT_EQ(c.vision.heads(), 14);
    EXPECT_EQ(c.text.heads, 10);
}

TEST(ModelConfig, ResNetTowerNamesTheKey) {
    expect_model_error([&] { load_model_config(kRoot + "/configs/backbones/RN50.json"); },
                       "vision_cfg.layers");
}

TEST(ModelConfig, UnsupportedFeaturesNameTheKey) {
    const nlohmann::json base = {
        {"embed_dim", 64},
        {"vision_cfg", {{"image_size", 240}, {"layers", 2}, {"width", 128}, {"patch_size", 16}}},
        {"text_cfg",
         {{"context_length", 77},
          {"vocab_size", 49408},
          {"width", 64},
          {"heads", 2},
          {"layers", 2}}}};
    EXPECT_NO_THROW(parse_model_config(base, "base"));
    auto with = [&](const std::string& tower, const std::string& key, nlohmann::json value) {
        nlohmann::json j = base;
        j[tower][key] = value;
        return j;
    };
    expect_model_error(
        [&] { parse_model_config(with("vision_cfg", "attentional_pool", true), "t"); },
        "vision_cfg.attentional_pool");
    expect_model_error(
        [&] { parse_model_config(with("vision_cfg", "timm_model_name", "convnext_base"), "t"); },
        "vision_cfg.timm_model_name");
    expect_model_error(
        [&] { parse_model_config(with("text_cfg", "hf_model_name", "roberta"), "t"); },
        "text_cfg.hf_model_name");
    expect_model_error([&] { parse_model_config(with("vision_cfg", "widht", 3), "t"); },
                       "vision_cfg.widht");
    expect_model_error([&] { parse_model_config(with("vision_cfg", "patch_size", 17), "t"); },
                       "vision_cfg.patch_size");
    expect_model_error([&] { parse_model_config(with("text_cfg", "heads", 3), "t"); },
                       "text_cfg.heads");
    nlohmann::json no_embed = base;
    no_embed.erase("embed_dim");
    expect_model_error([&] { parse_model_config(no_embed, "t"); }, "embed_dim");
}

TEST(ModelConfig, QuickGeluFlagIsRead) {
    nlohmann::json j = {
        {"embed_dim", 64},
        {"quick_gelu", true},
        {"vision_cfg", {{"image_size", 224}, {"layers", 1}, {"width", 64}, {"patch_size", 32}}},
        {"text_cfg", {{"width", 64}, {"heads", 1}, {"layers", 1}}}};
    EXPECT_TRUE(parse_model_config(j, "t").quick_gelu);
}

TEST(ModelConfig, MissingFileIsAnIoError) {
    EXPECT_THROW(load_model_config("/nonexistent/model.json"), IoError);
}

// Adversarial configs: bad numbers name the key; nothing crashes.
TEST(ModelConfig, OutOfRangeNumbersNameTheKey) {
    const nlohmann::json base = {
        {"embed_dim", 64},
        {"vision_cfg", {{"image_size", 240}, {"layers", 2}, {"width", 128}, {"patch_size", 16}}},
        {"text_cfg", {{"width", 64}, {"heads", 2}, {"layers", 2}}}};
    auto with = [&](const std::string& tower, const std::string& key, nlohmann::json value) {
        nlohmann::json j = base;
        j[tower][key] = value;
        return j;
    };
    const std::vector<std::tuple<std::string, std::string, nlohmann::json>> cases = {
        {"vision_cfg", "width", 0},
        {"vision_cfg", "width", -128},
        {"vision_cfg", "width", 1.5},
        {"vision_cfg", "width", "128"},
        {"vision_cfg", "width", int64_t{1} << 40},
        {"vision_cfg", "width", uint64_t{1} << 63},
        {"vision_cfg", "head_width", 96},      // does not divide 128
        {"vision_cfg", "image_size", 250},     // not a multiple of 16
        {"vision_cfg", "mlp_ratio", 1e300},    // hidden width overflows int
        {"vision_cfg", "mlp_ratio", 1e-300},   // hidden width rounds to 0
        {"text_cfg", "mlp_ratio", 1e300},
        {"text_cfg", "heads", 0},
        {"text_cfg", "context_length", 1},
    };
    for (const auto& [tower, key, value] : cases) {
        SCOPED_TRACE(tower + "." + key + " = " + value.dump());
        expect_model_error([&] { parse_model_config(with(tower, key, value), "t"); }, key);
    }
}

TEST(ModelConfig, DeeplyNestedFileIsARefusedNotACrash) {
    // A million nested arrays: printing them recursively would overflow the stack.
    const std::string path = ::testing::TempDir() + "winclip_model_config_deep.json";
    {
        std::ofstream out(path);
        out << R"({"embed_dim":64,"vision_cfg":{"act_kwargs":)" << std::string(1000000, '[')
            << std::string(1000000, ']') << R"(},"text_cfg":{}})";
    }
    try {
        load_model_config(path);
        ADD_FAILURE() << "no error for a deeply nested config";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("nest"), std::string::npos) << e.what();
    }
    std::remove(path.c_str());
}

}  // namespace
}  // namespace winclip::clip
