// The reducer: cells.csv formatting and the mean +- std arithmetic of the
// tables, checked against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "report/cells.h"
#include "report/table.h"

namespace winclip::report {
namespace {

CellRecord record(const std::string& cls, int seed, double auroc, int k = 1) {
    CellRecord r;
    r.dataset = "mvtec";
    r.class_name = cls;
    r.backbone = "bb";
    r.prompt_set = "paper";
    r.method = k == 0 ? "winclip" : "winclip+";
    r.k = k;
    r.seed = seed;
    r.id = "mvtec/" + cls + "/bb/paper/" + r.method + "/k" + std::to_string(k) + "/seed" +
           std::to_string(seed);
    r.metrics.fill(0.5);
    r.metrics[0] = auroc;
    return r;
}

TEST(Cells, MetricsUseSeventeenSignificantDigitsAndNan) {
    EXPECT_EQ(format_metric(0.1), "0.10000000000000001");
    EXPECT_EQ(format_metric(1.0), "1");
    EXPECT_EQ(format_metric(std::nan("")), "nan");
}

TEST(Cells, CsvHasDesignColumnsAndRowsSortedById) {
    auto b = record("screw", 0, 0.25);
    auto a = record("bottle", 1, 0.75);
    a.status = "failed";
    a.error = "mask 1, wrong \"size\"";
    const std::string csv = cells_csv({b, a});
    const std::string header =
        "dataset,class,backbone,prompt_set,method,k,seed,switches,image_auroc,image_aupr,"
        "image_f1_max,pixel_auroc,pixel_aupr,pixel_au_pro,pixel_f1_max,status,error\n";
    ASSERT_EQ(csv.substr(0, header.size()), header);
    const std::string rows = csv.substr(header.size());
    EXPECT_EQ(rows,
              "mvtec,bottle,bb,paper,winclip+,1,1,,0.75,0.5,0.5,0.5,0.5,0.5,0.5,failed,"
              "\"mask 1, wrong \"\"size\"\"\"\n"
              "mvtec,screw,bb,paper,winclip+,1,0,,0.25,0.5,0.5,0.5,0.5,0.5,0.5,ok,\n");
}

TEST(Cells, JsonRoundTripIsExactIncludingNan) {
    auto r = record("bottle", 2, 0.1 + 0.2);
    r.metrics[5] = std::nan("");
    const auto back = CellRecord::from_json(r.to_json(), "test");
    EXPECT_EQ(back.id, r.id);
    EXPECT_EQ(back.metrics[0], r.metrics[0]);  // bit-exact: tolerance 0
    EXPECT_TRUE(std::isnan(back.metrics[5]));
    EXPECT_THROW(CellRecord::from_json(nlohmann::json{{"id", 1}}, "x.json"), IoError);
}

// Population std of {0.6, 0.8} is 0.1; of {1, 2, 3, 4} is sqrt(1.25).
TEST(Table, MeanStdIsPopulationStd) {
    const auto a = mean_std({0.6, 0.8});
    EXPECT_NEAR(a.mean, 0.7, 1e-15);
    EXPECT_NEAR(a.std, 0.1, 1e-15);
    const auto b = mean_std({1, 2, 3, 4});
    EXPECT_NEAR(b.mean, 2.5, 1e-15);
    EXPECT_NEAR(b.std, std::sqrt(1.25), 1e-15);
    EXPECT_TRUE(std::isnan(mean_std({}).mean));
}

// Two classes, two seeds. bottle: 0.6, 0.8; screw: 0.9, 0.7.
// Per-seed class means: seed0 (0.6+0.9)/2 = 0.75, seed1 (0.8+0.7)/2 = 0.75,
// so the mean row is 0.75 +- 0 although each class varies by 0.1.
TEST(Table, MeanRowAveragesClassesWithinEachSeedFirst) {
    const auto tables = build_tables({record("bottle", 0, 0.6), record("bottle", 1, 0.8),
                                      record("screw", 0, 0.9), record("screw", 1, 0.7)});
    ASSERT_EQ(tables.size(), 1u);
    const auto& rows = tables[0].rows;
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].class_name, "bottle");
    EXPECT_NEAR(rows[0].metrics[0].mean, 0.7, 1e-15);
    EXPECT_NEAR(rows[0].metrics[0].std, 0.1, 1e-15);
    EXPECT_NEAR(rows[1].metrics[0].std, 0.1, 1e-15);
    EXPECT_EQ(rows[2].class_name, "mean");
    EXPECT_NEAR(rows[2].metrics[0].mean, 0.75, 1e-15);
    EXPECT_NEAR(rows[2].metrics[0].std, 0.0, 1e-15);
    EXPECT_EQ(rows[2].seeds_ok, 2);
}

TEST(Table, FailedSeedIsLeftOutAndCounted) {
    auto failed = record("screw", 1, 0.0);
    failed.status = "failed";
    const auto tables = build_tables(
        {record("bottle", 0, 0.6), record("bottle", 1, 0.8), record("screw", 0, 0.9), failed});
    const auto& rows = tables[0].rows;
    EXPECT_EQ(rows[1].seeds_ok, 1);
    EXPECT_EQ(rows[1].seeds_failed, 1);
    EXPECT_NEAR(rows[1].metrics[0].mean, 0.9, 1e-15);
    // Only seed 0 is complete: (0.6 + 0.9) / 2.
    EXPECT_NEAR(rows[2].metrics[0].mean, 0.75, 1e-15);
    EXPECT_EQ(rows[2].seeds_failed, 1);
    const std::string md = tables_markdown({record("bottle", 0, 0.6), failed}, {"bb"});
    EXPECT_NE(md.find("random weights — scores are meaningless"), std::string::npos);
    EXPECT_NE(md.find("(1 failed)"), std::string::npos);
}

TEST(Table, PercentWithOneDecimal) {
    const std::string md =
        tables_markdown({record("bottle", 0, 0.6), record("bottle", 1, 0.8)}, {});
    EXPECT_NE(md.find("| bottle | 70.0 ± 10.0 | 50.0 ± 0.0 |"), std::string::npos) << md;
    EXPECT_EQ(md.find("random weights"), std::string::npos);
}

TEST(Table, ShotsSortNumerically) {
    const auto tables = build_tables(
        {record("bottle", 0, 0.5, 10), record("bottle", 0, 0.5, 2), record("bottle", 0, 0.5, 0)});
    ASSERT_EQ(tables.size(), 3u);
    EXPECT_EQ(tables[0].k, 0);
    EXPECT_EQ(tables[1].k, 2);
    EXPECT_EQ(tables[2].k, 10);
}

}  // namespace
}  // namespace winclip::report
