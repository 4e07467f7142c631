// Golden values: every group of metrics-golden.h5 (scikit-learn 1.2 and an
// exact MVTec AD PRO implementation, float64) reproduced to 1e-9, through the
// same file reader that `winclip metrics` uses.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <regex>

#include "core/error.h"
#include "io/hdf5.h"
#include "metrics/metrics_file.h"

namespace winclip::metrics {
namespace {

const std::string kGolden = std::string(WINCLIP_TEST_DATA) + "/fixtures/metrics-golden.h5";
constexpr double kTolerance = 1e-9;

void expect_matches(double got, double expected, const std::string& what) {
    if (std::isnan(expected)) {
        EXPECT_TRUE(std::isnan(got)) << what << ": got " << got;
    } else {
        EXPECT_NEAR(got, expected, kTolerance) << what;
    }
}

TEST(MetricsGolden, DefinitionsAreTheOnesImplemented) {
    // The reference file states its definitions; a changed definition must
    // fail here before any number is compared.
    io::H5File file(kGolden, io::H5File::Mode::kRead);
    const std::string definitions = file.read_attribute_string("/", "definitions");
    for (const char* phrase :
         {"average_precision_score", "score >= t", "highest t reaching it", "8-connected",
          "starts at (0, 0)", "linear interpolation", "divided by L"}) {
        EXPECT_NE(definitions.find(phrase), std::string::npos) << phrase;
    }
}

TEST(MetricsGolden, EveryImageGroupMatches) {
    io::H5File file(kGolden, io::H5File::Mode::kRead);
    const auto groups = file.list("/image");
    ASSERT_GE(groups.size(), 6u);
    for (const std::string& name : groups) {
        const std::string group = "/image/" + name;
        MetricsFileOptions options;
        options.group = group;
        const MetricsFileResult r = evaluate_metrics_file(kGolden, options);
        ASSERT_TRUE(r.has_image) << group;
        EXPECT_FALSE(r.has_pixel) << group;
        for (const auto& [key, value] :
             std::vector<std::pair<std::string, double>>{{"auroc", r.image.auroc},
                                                         {"aupr", r.image.aupr},
                                                         {"f1_max", r.image.f1_max},
                                                         {"f1_threshold", r.image.f1_threshold}}) {
            expect_matches(value, file.read_attribute_double(group, key), group + " " + key);
        }
        if (std::isnan(r.image.auroc)) {
            EXPECT_FALSE(r.image.reason.empty()) << group;
        }
    }
}

TEST(MetricsGolden, PixelRegionsGroupMatches) {
    io::H5File file(kGolden, io::H5File::Mode::kRead);
    const std::string group = "/pixel/regions";
    for (double limit : {0.3, 1.0}) {
        MetricsFileOptions options;
        options.group = group;
        options.pro_limit = limit;
        const MetricsFileResult r = evaluate_metrics_file(kGolden, options);
        ASSERT_TRUE(r.has_pixel);
        const PixelMetrics& m = r.pixel;
        expect_matches(m.pixel_auroc, file.read_attribute_double(group, "pixel_auroc"), "auroc");
        expect_matches(m.pixel_aupr, file.read_attribute_double(group, "pixel_aupr"), "aupr");
        expect_matches(m.pixel_f1_max, file.read_attribute_double(group, "pixel_f1_max"), "f1");
        expect_matches(m.pixel_f1_threshold,
                       file.read_attribute_double(group, "pixel_f1_threshold"), "threshold");
        const std::string pro_key = limit == 0.3 ? "au_pro_0.3" : "au_pro_1.0";
        expect_matches(m.au_pro, file.read_attribute_double(group, pro_key), pro_key);
        EXPECT_EQ(m.images, 6u);
    }
}

TEST(MetricsGolden, JsonHasKeysNullsAndSeventeenDigits) {
    MetricsFileOptions options;
    options.group = "/image/one_class";
    const std::string one_class = metrics_json(evaluate_metrics_file(kGolden, options), false);
    const auto j = nlohmann::json::parse(one_class);
    for (const char* key : {"auroc", "aupr", "f1_max", "f1_threshold"}) {
        EXPECT_TRUE(j.at(key).is_null()) << key;
        EXPECT_TRUE(j.at(std::string(key) + "_reason").is_string()) << key;
    }

    options.group = "/pixel/regions";
    options.curve = true;
    const std::string pixel = metrics_json(evaluate_metrics_file(kGolden, options), true);
    const auto p = nlohmann::json::parse(pixel);
    EXPECT_EQ(p.at("au_pro_limit").get<double>(), 0.3);
    EXPECT_EQ(p.at("pro_curve").at("fpr").front().get<double>(), 0.0);
    EXPECT_EQ(p.at("pro_curve").at("fpr").back().get<double>(), 0.3);
    EXPECT_FALSE(p.contains("auroc"));
    // "pixel_auroc": d.dddddddddddddddd (17 significant digits, written as such).
    const std::regex seventeen("\"pixel_auroc\": 0\\.[0-9]{17}");
    EXPECT_TRUE(std::regex_search(pixel, seventeen)) << pixel.substr(0, 200);
}

TEST(MetricsFile, MissingGroupIsDatasetError) {
    MetricsFileOptions options;
    options.group = "/image/no_such_group";
    EXPECT_THROW(evaluate_metrics_file(kGolden, options), DatasetError);
    options.group = "/image";
    EXPECT_THROW(evaluate_metrics_file(kGolden, options), DatasetError);
}

TEST(MetricsFile, MissingFileIsIoError) {
    EXPECT_THROW(evaluate_metrics_file("/nonexistent/x.h5", {}), IoError);
}

TEST(MetricsFile, MapMaskMismatchNamesImage) {
    const std::string path = ::testing::TempDir() + "metrics_mismatch.h5";
    {
        io::H5File file(path, io::H5File::Mode::kTruncate);
        file.write("masks", FloatArray({2, 3, 4}));
        file.write("maps", FloatArray({2, 4, 3}));
    }
    try {
        evaluate_metrics_file(path, {});
        FAIL() << "no error";
    } catch (const DatasetError& e) {
        EXPECT_NE(std::string(e.what()).find("maps[0]"), std::string::npos) << e.what();
    }
    std::remove(path.c_str());
}

// Labels stored as floating point (as numpy often saves them) must be exactly
// 0 or 1: a 0.7 silently truncated to 0 would change every metric, and NaN
// must be reported as NaN rather than as HDF5's integer conversion of it.
TEST(MetricsFile, FractionalOrNanLabelsAreDatasetErrorsNamingTheValue) {
    const std::string path = ::testing::TempDir() + "metrics_float_labels.h5";
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (const auto& [bad, text] :
         std::vector<std::pair<double, std::string>>{{0.7, "0.7"}, {nan, "nan"}, {-1.0, "-1"}}) {
        {
            io::H5File file(path, io::H5File::Mode::kTruncate);
            file.write("labels", DoubleArray({4}, {0.0, bad, 1.0, 0.0}));
            file.write("scores", DoubleArray({4}, {0.1, 0.2, 0.3, 0.4}));
        }
        try {
            evaluate_metrics_file(path, {});
            FAIL() << "label " << text << " accepted";
        } catch (const DatasetError& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find("labels[1]"), std::string::npos) << what;
            EXPECT_NE(what.find(text), std::string::npos) << what;
        }
    }
    // Whole-valued floating-point labels are fine.
    {
        io::H5File file(path, io::H5File::Mode::kTruncate);
        file.write("labels", DoubleArray({4}, {0.0, 1.0, 1.0, 0.0}));
        file.write("scores", DoubleArray({4}, {0.1, 0.2, 0.3, 0.4}));
    }
    // Anomalous 0.2 and 0.3 beat normal 0.1 and lose to 0.4: AUROC 2 / 4.
    EXPECT_NEAR(evaluate_metrics_file(path, {}).image.auroc, 0.5, kTolerance);
    std::remove(path.c_str());
}

TEST(MetricsFile, PerImageGroupsOfDifferentSizes) {
    // Native-resolution maps of images of different sizes, one dataset each.
    const std::string path = ::testing::TempDir() + "metrics_ragged.h5";
    {
        io::H5File file(path, io::H5File::Mode::kTruncate);
        FloatArray mask0({2, 3}, {0, 1, 0, 0, 0, 0});
        FloatArray map0({2, 3}, {0.1f, 0.9f, 0.2f, 0.3f, 0.4f, 0.5f});
        FloatArray mask1({3, 1}, {0, 0, 255});
        FloatArray map1({3, 1}, {0.0f, 0.6f, 0.8f});
        file.write("masks/0", mask0);
        file.write("maps/0", map0);
        file.write("masks/1", mask1);
        file.write("maps/1", map1);
    }
    const MetricsFileResult r = evaluate_metrics_file(path, {});
    ASSERT_TRUE(r.has_pixel);
    EXPECT_EQ(r.pixel.images, 2u);
    // Anomalous 0.9 and 0.8 above every normal pixel (max 0.6): perfect.
    EXPECT_NEAR(r.pixel.pixel_auroc, 1.0, 1e-15);
    EXPECT_NEAR(r.pixel.au_pro, 1.0, 1e-15);
    std::remove(path.c_str());
}

}  // namespace
}  // namespace winclip::metrics
