// Prompt sets: YAML validation, name resolution and expansion order.
#include "winclip/prompts.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/error.h"

namespace winclip::method {
namespace {

const char* kMinimal = R"(
normal_states: ["{}", "good {}"]
anomalous_states: ["broken {}"]
templates: ["a {}.", "the {}!"]
)";

// Asserts that `fn` throws ConfigError whose message contains every needle.
template <typename Fn>
void expect_config_error(Fn fn, std::initializer_list<std::string> needles) {
    try {
        fn();
        ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& e) {
        for (const auto& n : needles) {
            EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
                << "message lacks '" << n << "': " << e.what();
        }
    }
}

TEST(PromptSet, ExpandsStatesOuterTemplatesInner) {
    const PromptSet set = parse_prompt_set(kMinimal, "minimal.yaml");
    const PromptEnsemble e = expand_prompts(set, "cup");
    const std::vector<std::string> normal = {"a cup.", "the cup!", "a good cup.", "the good cup!"};
    const std::vector<std::string> anomalous = {"a broken cup.", "the broken cup!"};
    EXPECT_EQ(e.normal, normal);
    EXPECT_EQ(e.anomalous, anomalous);
    EXPECT_EQ(set.name, "minimal");
}

TEST(PromptSet, ClassStatesAppendAfterCommonStatesAndNamesOverride) {
    const PromptSet set = parse_prompt_set(std::string(kMinimal) + R"(
class_names:
  metal_nut: "metal nut"
class_states:
  metal_nut:
    anomalous: ["{} flipped upside-down"]
  pcb1:
    normal: ["{} with good soldering"]
)",
                                           "extra.yaml");
    const PromptEnsemble nut = expand_prompts(set, "metal_nut");
    const std::vector<std::string> anomalous = {"a broken metal nut.", "the broken metal nut!",
                                                "a metal nut flipped upside-down.",
                                                "the metal nut flipped upside-down!"};
    EXPECT_EQ(nut.anomalous, anomalous);
    EXPECT_EQ(nut.normal.size(), 4u);
    const PromptEnsemble pcb = expand_prompts(set, "pcb1");
    ASSERT_EQ(pcb.normal.size(), 6u);
    EXPECT_EQ(pcb.normal[4], "a pcb1 with good soldering.");
    EXPECT_EQ(pcb.anomalous.size(), 2u);
}

TEST(PromptSet, UnknownTopLevelKeyNamesKeyAndFile) {
    expect_config_error(
        [] { parse_prompt_set(std::string(kMinimal) + "templatez: []\n", "mine.yaml"); },
        {"templatez", "mine.yaml"});
}

TEST(PromptSet, UnknownClassStateKeyNamesKeyAndFile) {
    expect_config_error(
        [] {
            parse_prompt_set(std::string(kMinimal) + "class_states:\n  cup:\n    normall: []\n",
                             "mine.yaml");
        },
        {"class_states.cup.normall", "mine.yaml"});
}

TEST(PromptSet, RejectsMissingPlaceholderAndDoublePlaceholder) {
    expect_config_error(
        [] {
            parse_prompt_set(
                "normal_states: ['{}']\nanomalous_states: ['bad']\ntemplates: ['{}']\n", "p.yaml");
        },
        {"anomalous_states[0]", "p.yaml"});
    expect_config_error(
        [] {
            parse_prompt_set(
                "normal_states: ['{}']\nanomalous_states: ['{}']\ntemplates: ['{} {}']\n",
                "p.yaml");
        },
        {"templates[0]"});
}

TEST(PromptSet, RejectsMissingOrEmptyRequiredLists) {
    expect_config_error(
        [] { parse_prompt_set("normal_states: ['{}']\ntemplates: ['{}']\n", "p.yaml"); },
        {"anomalous_states", "p.yaml"});
    expect_config_error(
        [] {
            parse_prompt_set("normal_states: []\nanomalous_states: ['{}']\ntemplates: ['{}']\n",
                             "p.yaml");
        },
        {"normal_states", "empty"});
    expect_config_error([] { parse_prompt_set("[1, 2]", "list.yaml"); }, {"list.yaml"});
    expect_config_error([] { parse_prompt_set("a: [", "broken.yaml"); }, {"broken.yaml"});
}

// YAML allows keys that are lists or maps; reading them as names must be a
// ConfigError naming the file, not a yaml-cpp conversion exception.
TEST(PromptSet, NonScalarKeysAreConfigErrors) {
    const std::string lists = "normal_states: [\"{}\"]\nanomalous_states: [\"bad {}\"]\n"
                              "templates: [\"a {}.\"]\n";
    expect_config_error([&] { parse_prompt_set(lists + "? [a, b]\n: 1\n", "keys.yaml"); },
                        {"keys.yaml"});
    expect_config_error(
        [&] { parse_prompt_set(lists + "class_states:\n  bottle:\n    ? {x: 1}\n    : []\n",
                               "nested.yaml"); },
        {"nested.yaml"});
    expect_config_error(
        [&] { parse_prompt_set(lists + "class_names:\n  ? [a]\n  : word\n", "names.yaml"); },
        {"names.yaml"});
}

// Wrong scalar types where lists or maps are expected.
TEST(PromptSet, WrongTypesAreConfigErrorsNamingTheKey) {
    expect_config_error(
        [] { parse_prompt_set("normal_states: 3\nanomalous_states: [\"x {}\"]\n"
                              "templates: [\"{}\"]\n", "t.yaml"); },
        {"normal_states", "t.yaml"});
    expect_config_error(
        [] { parse_prompt_set("normal_states: [[\"{}\"]]\nanomalous_states: [\"x {}\"]\n"
                              "templates: [\"{}\"]\n", "t.yaml"); },
        {"normal_states[0]", "t.yaml"});
    expect_config_error(
        [] { parse_prompt_set("normal_states: [\"{}\"]\nanomalous_states: [\"x {}\"]\n"
                              "templates: [\"{}\"]\nclass_states: [1]\n", "t.yaml"); },
        {"class_states", "t.yaml"});
}

TEST(PromptSet, ShippedNamesResolveUnderConfigsAndOthersArePaths) {
    const std::string root = WINCLIP_REPO_ROOT;
    EXPECT_EQ(resolve_prompt_set_path("paper"), root + "/configs/prompts/paper.yaml");
    EXPECT_EQ(resolve_prompt_set_path("my/own.yaml"), "my/own.yaml");
    EXPECT_EQ(resolve_prompt_set_path("own.yaml"), "own.yaml");
    expect_config_error([] { resolve_prompt_set_path("no-such-set"); },
                        {"no-such-set", "paper", "anomalib-compat"});
    expect_config_error([] { load_prompt_set("/nonexistent/prompts.yaml"); },
                        {"/nonexistent/prompts.yaml"});
}

// The paper's lists (supplement, Fig. 6): 7 normal and 4 anomalous states,
// 11 template phrasings each with "a" and "the", no duplicates.
TEST(PromptSet, PaperSetHasThePapersLists) {
    const PromptSet set = load_prompt_set("paper");
    EXPECT_EQ(set.normal_states.size(), 7u);
    EXPECT_EQ(set.anomalous_states.size(), 4u);
    ASSERT_EQ(set.templates.size(), 22u);
    std::set<std::string> unique(set.templates.begin(), set.templates.end());
    EXPECT_EQ(unique.size(), 22u);
    for (const char* t : {"a cropped photo of a {}.", "a jpeg corrupted photo of a {}.",
                          "a photo of the {} for anomaly detection."}) {
        EXPECT_TRUE(unique.count(t)) << t;
    }
    const PromptEnsemble e = expand_prompts(set, "metal_nut");
    EXPECT_EQ(e.normal.size(), 154u);
    EXPECT_EQ(e.anomalous.size(), 88u);
    EXPECT_EQ(e.normal[0], "a cropped photo of the metal nut.");
    EXPECT_EQ(e.anomalous.back(), "a photo of a metal nut with damage for anomaly detection.");
}

TEST(PromptSet, AnomalibCompatKeepsItsDuplicateTemplate) {
    const PromptSet set = load_prompt_set("anomalib-compat");
    ASSERT_EQ(set.templates.size(), 21u);
    EXPECT_EQ(set.templates[7], "a jpeg corrupted photo of the {}.");
    EXPECT_EQ(set.templates[8], "a jpeg corrupted photo of the {}.");
    EXPECT_EQ(object_name(set, "metal_nut"), "metal_nut");
}

}  // namespace
}  // namespace winclip::method
