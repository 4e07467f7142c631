// Presets, switch suffixes and the JSON form of the method's settings.
#include "winclip/settings.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace winclip::method {
namespace {

TEST(Settings, PaperPresetIsThePapersChoices) {
    const Settings s = preset("paper");
    EXPECT_EQ(s.prompt_set, "paper");
    EXPECT_DOUBLE_EQ(s.temperature, 0.01);  // exact: the literal 0.01
    EXPECT_TRUE(s.normalize_prompts);
    EXPECT_TRUE(s.image_scale_in_fusion);
    EXPECT_DOUBLE_EQ(s.harmonic_eps, 0.0);
    EXPECT_EQ(s.window_sizes, (std::vector<int>{2, 3}));
    EXPECT_EQ(s.window_stride, 1);
    EXPECT_EQ(s.switch_suffix(), "");
}

TEST(Settings, InClassDefaultsEqualThePaperPreset) {
    EXPECT_EQ(Settings{}.to_json(), preset("paper").to_json());
}

TEST(Settings, AnomalibCompatPresetMatchesTheReference) {
    const Settings s = preset("anomalib-compat");
    EXPECT_EQ(s.prompt_set, "anomalib-compat");
    EXPECT_DOUBLE_EQ(s.temperature, 0.07);  // exact: the literal 0.07
    EXPECT_FALSE(s.normalize_prompts);
    EXPECT_TRUE(s.image_scale_in_fusion);
    EXPECT_DOUBLE_EQ(s.harmonic_eps, 0.0);
    EXPECT_EQ(s.switch_suffix(), "t0.07+raw");
}

TEST(Settings, UnknownPresetThrowsNamingIt) {
    try {
        preset("papper");
        FAIL() << "expected ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("papper"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("anomalib-compat"), std::string::npos);
    }
}

TEST(Settings, SwitchSuffixListsEveryDifferenceInFixedOrder) {
    Settings s = preset("paper");
    s.prompt_set = "custom";  // the prompt set is its own cell-id field
    EXPECT_EQ(s.switch_suffix(), "");
    s.window_stride = 2;
    s.harmonic_eps = 1e-6;
    s.image_scale_in_fusion = false;
    s.window_sizes = {2, 3, 4};
    EXPECT_EQ(s.switch_suffix(), "noimg+eps1e-06+w2-3-4+s2");
    s.temperature = 0.5;
    EXPECT_EQ(s.switch_suffix(), "t0.5+noimg+eps1e-06+w2-3-4+s2");
    for (char c : s.switch_suffix()) {
        EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+')
            << "not filesystem-safe: " << c;
    }
}

TEST(Settings, ToJsonHoldsEverySwitch) {
    const nlohmann::json j = preset("anomalib-compat").to_json();
    EXPECT_EQ(j.at("prompt_set"), "anomalib-compat");
    EXPECT_DOUBLE_EQ(j.at("temperature").get<double>(), 0.07);  // exact round trip
    EXPECT_EQ(j.at("prompt_average"), "raw");
    EXPECT_EQ(j.at("image_scale_in_fusion"), true);
    EXPECT_DOUBLE_EQ(j.at("harmonic_eps").get<double>(), 0.0);  // exact
    EXPECT_EQ(j.at("window_sizes"), nlohmann::json::array({2, 3}));
    EXPECT_EQ(j.at("window_stride"), 1);
    EXPECT_EQ(j.size(), 7u);
}

TEST(Settings, ValidateRejectsOutOfRangeSwitches) {
    Settings s;
    EXPECT_NO_THROW(validate_settings(s, "test"));
    s.temperature = 0;
    EXPECT_THROW(validate_settings(s, "test"), ConfigError);
    s = Settings{};
    s.harmonic_eps = -1e-3;
    EXPECT_THROW(validate_settings(s, "test"), ConfigError);
    s = Settings{};
    s.window_sizes = {2, 0};
    EXPECT_THROW(validate_settings(s, "test"), ConfigError);
    s = Settings{};
    s.window_stride = 0;
    EXPECT_THROW(validate_settings(s, "test"), ConfigError);
}

TEST(Settings, PromptAverageNamesRoundTrip) {
    EXPECT_TRUE(parse_prompt_average("normalized", "--prompt-average"));
    EXPECT_FALSE(parse_prompt_average("raw", "--prompt-average"));
    EXPECT_THROW(parse_prompt_average("normalised", "--prompt-average"), ConfigError);
    EXPECT_EQ(prompt_average_name(true), "normalized");
    EXPECT_EQ(prompt_average_name(false), "raw");
}

}  // namespace
}  // namespace winclip::method
