// The paper's published numbers beside our tables: the shipped file's values
// reach table.md exactly as transcribed, only matching tables get them, and
// the file's reader rejects what it does not know.
#include "report/paper.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "report/table.h"

namespace winclip::report {
namespace {

CellRecord record(const std::string& cls, const std::string& backbone) {
    CellRecord r;
    r.dataset = "mvtec";
    r.class_name = cls;
    r.backbone = backbone;
    r.prompt_set = "paper";
    r.method = "winclip";
    r.k = 0;
    r.seed = 0;
    r.id = "mvtec/" + cls + "/" + backbone + "/paper/winclip/k0/seed0";
    r.metrics.fill(0.5);
    return r;
}

// Jeong et al. 2023, Table 1 (image) and Table 4 (pixel), WinCLIP zero-shot on
// MVTec AD with ViT-B/16+; text compared exactly (no numeric tolerance: the
// row is the transcribed text).
TEST(PaperRow, ShippedNumbersFollowTheMeanRowOfAMatchingTable) {
    const std::string md = tables_markdown(
        {record("bottle", "vit-b-16-plus-240"), record("screw", "vit-b-16-plus-240")}, {});
    const std::string mean_row =
        "| **mean** | 50.0 ± 0.0 | 50.0 ± 0.0 | 50.0 ± 0.0 | 50.0 ± 0.0 | 50.0 ± 0.0 | "
        "50.0 ± 0.0 | 1 |\n";
    const std::string paper_row =
        "| paper (Jeong et al. 2023), all classes | 91.8 ± 0.0 | 96.5 ± 0.0 | 92.9 ± 0.0 | "
        "85.1 ± 0.0 | 64.6 ± 0.0 | 31.7 ± 0.0 | - |\n";
    EXPECT_NE(md.find(mean_row + paper_row), std::string::npos) << md;
}

TEST(PaperRow, FewShotEntryCarriesThePublishedStd) {
    auto r = record("bottle", "vit-b-16-plus-240");
    r.dataset = "visa";
    r.method = "winclip+";
    r.k = 1;
    const std::string md = tables_markdown({r}, {});
    // Table 1 / Table 4, VisA, WinCLIP+ 1-shot.
    EXPECT_NE(md.find("| paper (Jeong et al. 2023), all classes | 83.8 ± 4.0 | 85.1 ± 4.0 | "
                      "83.1 ± 1.7 | 96.4 ± 0.4 | 85.1 ± 2.1 | 41.3 ± 2.3 | - |\n"),
              std::string::npos)
        << md;
}

TEST(PaperRow, NoRowForOtherBackbonesSwitchesOrShots) {
    EXPECT_EQ(tables_markdown({record("bottle", "tinyclip-demo")}, {}).find("paper ("),
              std::string::npos);
    auto switched = record("bottle", "vit-b-16-plus-240");
    switched.switches = "no-window";
    EXPECT_EQ(tables_markdown({switched}, {}).find("paper ("), std::string::npos);
    auto eight = record("bottle", "vit-b-16-plus-240");
    eight.method = "winclip+";
    eight.k = 8;
    EXPECT_EQ(tables_markdown({eight}, {}).find("paper ("), std::string::npos);
    EXPECT_EQ(tables_markdown({record("bottle", "vit-b-16-plus-240")}, {}, nullptr).find("paper ("),
              std::string::npos);
}

TEST(PaperRow, MissingValueIsADash) {
    const PaperNumbers numbers = parse_paper_numbers(
        "label: published\nbackbone: bb\nprompt_set: paper\n"
        "entries:\n  - {dataset: mvtec, method: winclip, k: 0, image_auroc: [90.04, 1.26]}\n",
        "inline.yaml");
    const std::string md = tables_markdown({record("bottle", "bb")}, {}, &numbers);
    EXPECT_NE(md.find("| published | 90.0 ± 1.3 | - | - | - | - | - | - |\n"), std::string::npos)
        << md;
}

TEST(PaperNumbers, ShippedFileHasEveryPublishedConfiguration) {
    const PaperNumbers& p = shipped_paper_numbers();
    EXPECT_EQ(p.backbone, "vit-b-16-plus-240");
    EXPECT_EQ(p.prompt_set, "paper");
    ASSERT_EQ(p.entries.size(), 8u);  // {mvtec, visa} x {k = 0, 1, 2, 4}
    const PaperEntry* e = p.find("mvtec", "vit-b-16-plus-240", "paper", "winclip+", 4, "");
    ASSERT_NE(e, nullptr);
    ASSERT_TRUE(e->metrics[0].has_value());
    EXPECT_NEAR(e->metrics[0]->mean, 95.2, 1e-12);  // Table 1; tolerance: parse rounding only
    EXPECT_NEAR(e->metrics[0]->std, 1.3, 1e-12);
    EXPECT_FALSE(e->metrics[4].has_value());  // pixel AUPR: the paper reports none
}

void expect_config_error(const std::string& yaml, const std::string& needle) {
    try {
        parse_paper_numbers(yaml, "bad.yaml");
        ADD_FAILURE() << "no ConfigError for:\n" << yaml;
    } catch (const ConfigError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("bad.yaml"), std::string::npos) << what;
        EXPECT_NE(what.find(needle), std::string::npos) << what;
    }
}

TEST(PaperNumbers, BadFilesAreConfigErrorsNamingFileAndKey) {
    const std::string head = "label: x\nbackbone: bb\nprompt_set: paper\n";
    expect_config_error(head + "colour: red\nentries: []\n", "'colour'");
    expect_config_error(
        head + "entries:\n  - {dataset: mvtec, method: winclip, k: 0, image_aurocc: [1, 0]}\n",
        "'image_aurocc'");
    expect_config_error(head +
                            "entries:\n  - {dataset: mvtec, method: winclip, k: 0, "
                            "image_auroc: [91.8]}\n",
                        "'image_auroc'");
    expect_config_error(head + "entries:\n  - {dataset: mvtec, method: winclip+, k: 0}\n",
                        "winclip+");
    expect_config_error(head +
                            "entries:\n  - {dataset: mvtec, method: winclip, k: 0}\n"
                            "  - {dataset: mvtec, method: winclip, k: 0}\n",
                        "repeats");
    expect_config_error("label: x\nprompt_set: paper\nentries: []\n", "'backbone'");
    EXPECT_THROW(load_paper_numbers("/nonexistent/paper.yaml"), IoError);
}

}  // namespace
}  // namespace winclip::report
