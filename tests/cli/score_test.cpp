// `winclip score` from the image files to OUT.h5, compared with the public
// reference's golden values (tests/data/fixtures/README.md). This covers the
// whole chain a user runs: list files, decoding, Pillow-compatible
// preprocessing, the CLIP forward pass, prompts, scoring and the output file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/hdf5.h"

namespace winclip {
namespace {

namespace fs = std::filesystem;

const std::string kRoot = WINCLIP_REPO_ROOT;
const std::string kGolden = std::string(WINCLIP_TEST_DATA) + "/fixtures/tinyclip-vit-240-golden.h5";

struct CommandRun {
    int status = -1;
    std::string output;  // stdout and stderr
};

CommandRun run_winclip(const std::string& args, const fs::path& dir) {
    const fs::path log = dir / "output.txt";
    const std::string command =
        std::string(WINCLIP_EXE) + " " + args + " > " + log.string() + " 2>&1";
    CommandRun r;
    r.status = std::system(command.c_str());
    std::ifstream in(log);
    r.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return r;
}

fs::path fresh_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / "winclip_cli_test" / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// Writes the golden file's image paths (relative to the shared data folder,
// which the repository mirrors under data/) into a list file.
std::string write_list(const fs::path& dir, const std::string& name,
                       const std::vector<std::string>& golden_paths) {
    const fs::path list = dir / name;
    std::ofstream out(list);
    for (const auto& p : golden_paths) out << kRoot << "/data/" << p << "\n";
    return list.string();
}

double max_abs_diff(const FloatArray& a, const FloatArray& b) {
    EXPECT_EQ(a.shape, b.shape);
    double m = 0;
    for (size_t i = 0; i < std::min(a.values.size(), b.values.size()); ++i)
        m = std::max(m, std::abs(static_cast<double>(a.values[i]) - b.values[i]));
    return m;
}

std::string score_args(const std::string& images, const std::string& out,
                       const std::string& preset = "anomalib-compat") {
    return "score --checkpoint " + kRoot + "/models/demo/tinyclip-vit-240.bin --model-config " +
           kRoot + "/models/demo/tinyclip-vit-240.json --class bottle --preset " + preset +
           " --images " + images + " --out " + out;
}

// Zero-shot from the image files: image scores within 2e-3, grid maps within
// 5e-3 of the reference (the file-to-file tolerances; the in-process parity
// tests hold 1e-4 from the reference's own pixels).
TEST(ScoreCommand, ZeroShotFromFilesMatchesTheReference) {
    const fs::path dir = fresh_dir("zero");
    io::H5File golden(kGolden, io::H5File::Mode::kRead);
    const auto paths = golden.read_strings("images/paths");
    const std::string out = (dir / "out.h5").string();
    const CommandRun r = run_winclip(score_args(write_list(dir, "images.txt", paths), out), dir);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("RANDOM WEIGHTS"), std::string::npos) << r.output;

    io::H5File f(out, io::H5File::Mode::kRead);
    EXPECT_LE(max_abs_diff(f.read_float("image_scores"), golden.read_float("zero_shot/image_scores")),
              2e-3);
    EXPECT_LE(max_abs_diff(f.read_float("grid_maps"), golden.read_float("zero_shot/grid_maps")),
              5e-3);
    EXPECT_LE(max_abs_diff(f.read_float("anomaly_maps"), golden.read_float("zero_shot/anomaly_maps")),
              5e-3);
    EXPECT_FALSE(f.exists("vision_grid_maps"));
    EXPECT_EQ(f.read_strings("paths").size(), paths.size());
    // Bottle images are 900 x 900: the native map covers the whole image.
    EXPECT_EQ(f.shape("anomaly_maps_native/0"), (std::vector<int64_t>{900, 900}));
    EXPECT_EQ(f.read_attribute_string("/", "warning"),
              "random weights: these scores are meaningless");
}

// WinCLIP+ with k = 1, 2, 3 references, as in the golden few_shot_k* groups.
TEST(ScoreCommand, FewShotFromFilesMatchesTheReference) {
    io::H5File golden(kGolden, io::H5File::Mode::kRead);
    const auto paths = golden.read_strings("images/paths");
    for (int k = 1; k <= 3; ++k) {
        SCOPED_TRACE("k = " + std::to_string(k));
        const std::string group = "few_shot_k" + std::to_string(k);
        const fs::path dir = fresh_dir("k" + std::to_string(k));
        const std::string out = (dir / "out.h5").string();
        const std::string refs =
            write_list(dir, "refs.txt", golden.read_strings(group + "/reference_paths"));
        const CommandRun r = run_winclip(
            score_args(write_list(dir, "images.txt", paths), out) + " --references " + refs, dir);
        ASSERT_EQ(r.status, 0) << r.output;
        io::H5File f(out, io::H5File::Mode::kRead);
        EXPECT_LE(max_abs_diff(f.read_float("image_scores"), golden.read_float(group + "/image_scores")),
                  2e-3);
        EXPECT_LE(max_abs_diff(f.read_float("vision_grid_maps"),
                               golden.read_float(group + "/vision_grid_maps")),
                  5e-3);
        EXPECT_LE(max_abs_diff(f.read_float("anomaly_maps"), golden.read_float(group + "/anomaly_maps")),
                  5e-3);
        EXPECT_EQ(f.read_strings("reference_paths").size(), static_cast<size_t>(k));
    }
}

TEST(ScoreCommand, DumpedEmbeddingsHaveTheFixtureShapes) {
    const fs::path dir = fresh_dir("dump");
    io::H5File golden(kGolden, io::H5File::Mode::kRead);
    const auto paths = golden.read_strings("images/paths");
    const std::string out = (dir / "out.h5").string();
    const CommandRun r = run_winclip(
        score_args(write_list(dir, "images.txt", paths), out) + " --dump-embeddings", dir);
    ASSERT_EQ(r.status, 0) << r.output;
    io::H5File f(out, io::H5File::Mode::kRead);
    for (const char* name : {"image_embeddings", "patch_tokens", "window_embeddings_2",
                             "window_embeddings_3"}) {
        EXPECT_EQ(f.shape(name), golden.shape(std::string("images/") + name)) << name;
    }
}

// With --masks the output is a file `winclip metrics` reads directly: image
// labels from the mask list, masks at native size, and links to the scores.
TEST(ScoreCommand, OutputWithMasksIsScoredByTheMetricsCommand) {
    const fs::path dir = fresh_dir("masks");
    io::H5File golden(kGolden, io::H5File::Mode::kRead);
    const auto paths = golden.read_strings("images/paths");
    // MVTec layout: test/<defect>/NNN.png has ground_truth/<defect>/NNN_mask.png.
    const fs::path masks_list = dir / "masks.txt";
    std::vector<int> labels;
    {
        std::ofstream out(masks_list);
        for (const auto& p : paths) {
            const fs::path image(p);
            const std::string defect = image.parent_path().filename().string();
            if (defect == "good") {
                out << "-\n";
                labels.push_back(0);
            } else {
                out << kRoot << "/data/mvtec_sample/bottle/ground_truth/" << defect << "/"
                    << image.stem().string() << "_mask.png\n";
                labels.push_back(1);
            }
        }
    }
    const std::string out = (dir / "out.h5").string();
    CommandRun r = run_winclip(score_args(write_list(dir, "images.txt", paths), out) +
                                   " --masks " + masks_list.string(),
                               dir);
    ASSERT_EQ(r.status, 0) << r.output;
    std::vector<float> scores;
    {
        io::H5File f(out, io::H5File::Mode::kRead);
        scores = f.read_float("scores").values;  // the link to image_scores
        EXPECT_EQ(scores, f.read_float("image_scores").values);
        EXPECT_EQ(f.shape("maps/2"), f.shape("masks/2"));
        EXPECT_EQ(f.read_int64("labels").values, std::vector<int64_t>(labels.begin(), labels.end()));
    }
    const std::string json = (dir / "metrics.json").string();
    r = run_winclip("metrics --in " + out + " --out " + json, dir);
    ASSERT_EQ(r.status, 0) << r.output;
    std::ifstream in(json);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Image AUROC by hand: the share of (anomalous, normal) pairs ordered
    // correctly, ties one half; exact in double for 3 x 2 pairs.
    double wins = 0, pairs = 0;
    for (size_t a = 0; a < labels.size(); ++a) {
        for (size_t n = 0; n < labels.size(); ++n) {
            if (labels[a] != 1 || labels[n] != 0) continue;
            pairs += 1;
            wins += scores[a] > scores[n] ? 1.0 : scores[a] == scores[n] ? 0.5 : 0.0;
        }
    }
    const auto at = text.find("\"auroc\":");
    ASSERT_NE(at, std::string::npos) << text;
    EXPECT_NEAR(std::stod(text.substr(at + 8)), wins / pairs, 1e-12) << text;
    EXPECT_NE(text.find("\"au_pro\":"), std::string::npos) << text;
    EXPECT_NE(text.find("\"pixel_auroc\":"), std::string::npos) << text;

    // A mask list that does not match the image list is one clear error.
    std::ofstream(dir / "short.txt") << "-\n";
    r = run_winclip(score_args(write_list(dir, "images.txt", paths), out) + " --masks " +
                        (dir / "short.txt").string(),
                    dir);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.output.find("short.txt has 1 entries"), std::string::npos) << r.output;
}

TEST(ScoreCommand, BadInputIsOneClearLineAndNoOutputFile) {
    const fs::path dir = fresh_dir("bad");
    // A file that is not an image.
    const fs::path bogus = dir / "not_an_image.png";
    std::ofstream(bogus) << "definitely not a PNG";
    const std::string list = (dir / "images.txt").string();
    std::ofstream(list) << "not_an_image.png\n";
    const std::string out = (dir / "out.h5").string();
    CommandRun r = run_winclip(score_args(list, out), dir);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.output.find(bogus.string()), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out));

    // An unknown preset names the value and the known ones.
    r = run_winclip(score_args(list, out, "fancy"), dir);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.output.find("fancy"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("anomalib-compat"), std::string::npos) << r.output;

    // A bad switch value names the flag.
    r = run_winclip(score_args(list, out) + " --image-scale-in-fusion maybe", dir);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.output.find("--image-scale-in-fusion"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace winclip
