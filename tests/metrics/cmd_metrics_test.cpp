// `winclip metrics` end to end: the built binary on metrics-golden.h5 groups,
// JSON compared with the golden attributes to 1e-9, plus exit statuses.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

#include "io/hdf5.h"

namespace {

const std::string kGolden = std::string(WINCLIP_TEST_DATA) + "/fixtures/metrics-golden.h5";
constexpr double kTolerance = 1e-9;

// Runs the binary; returns its exit status and fills `json` when it wrote one.
int run_metrics(const std::string& args, nlohmann::json* json) {
    const std::string out = ::testing::TempDir() + "winclip_metrics_cli.json";
    std::remove(out.c_str());
    const std::string command = std::string(WINCLIP_BINARY) + " --log-level error metrics --in " +
                                kGolden + " " + args + " --out " + out + " 2>/dev/null";
    const int status = std::system(command.c_str());
    if (json) {
        std::ifstream file(out);
        if (file) {
            std::stringstream text;
            text << file.rdbuf();
            *json = nlohmann::json::parse(text.str());
        }
    }
    std::remove(out.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(MetricsCommand, ImageGroupsMatchGolden) {
    winclip::io::H5File file(kGolden, winclip::io::H5File::Mode::kRead);
    for (const std::string& name : file.list("/image")) {
        const std::string group = "/image/" + name;
        nlohmann::json j;
        ASSERT_EQ(run_metrics("--group " + group, &j), 0) << group;
        for (const char* key : {"auroc", "aupr", "f1_max", "f1_threshold"}) {
            const double expected = file.read_attribute_double(group, key);
            if (std::isnan(expected)) {
                EXPECT_TRUE(j.at(key).is_null()) << group << " " << key;
                EXPECT_TRUE(j.at(std::string(key) + "_reason").is_string()) << group << " " << key;
            } else {
                EXPECT_NEAR(j.at(key).get<double>(), expected, kTolerance) << group << " " << key;
            }
        }
    }
}

TEST(MetricsCommand, PixelGroupMatchesGoldenWithCurve) {
    winclip::io::H5File file(kGolden, winclip::io::H5File::Mode::kRead);
    const std::string group = "/pixel/regions";
    nlohmann::json j;
    ASSERT_EQ(run_metrics("--group " + group + " --curve", &j), 0);
    for (const char* key : {"pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_f1_threshold"}) {
        EXPECT_NEAR(j.at(key).get<double>(), file.read_attribute_double(group, key), kTolerance)
            << key;
    }
    EXPECT_NEAR(j.at("au_pro").get<double>(), file.read_attribute_double(group, "au_pro_0.3"),
                kTolerance);
    EXPECT_EQ(j.at("au_pro_limit").get<double>(), 0.3);
    const auto& fpr = j.at("pro_curve").at("fpr");
    const auto& pro = j.at("pro_curve").at("pro");
    ASSERT_EQ(fpr.size(), pro.size());
    EXPECT_EQ(fpr.front().get<double>(), 0.0);
    EXPECT_EQ(pro.front().get<double>(), 0.0);
    EXPECT_EQ(fpr.back().get<double>(), 0.3);

    nlohmann::json full;
    ASSERT_EQ(run_metrics("--group " + group + " --pro-limit 1.0", &full), 0);
    EXPECT_NEAR(full.at("au_pro").get<double>(), file.read_attribute_double(group, "au_pro_1.0"),
                kTolerance);
    EXPECT_FALSE(full.contains("pro_curve"));
}

TEST(MetricsCommand, BadInputExitsNonZero) {
    EXPECT_NE(run_metrics("--group /no/such/group", nullptr), 0);
    EXPECT_NE(run_metrics("--group /image/ties --pro-limit 0", nullptr), 0);
    EXPECT_NE(run_metrics("--group /image", nullptr), 0);  // no datasets directly under it
}

}  // namespace
