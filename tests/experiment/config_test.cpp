// The experiment YAML reader and grid expansion: validation messages name the
// key and the file; cell ids are stable and ordered as DESIGN.md says.
#include "experiment/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "core/error.h"
#include "experiment/grid.h"

namespace winclip::experiment {
namespace {

const std::string kRepo = WINCLIP_REPO_ROOT;

std::string yaml_with(const std::string& grid, const std::string& extra = "") {
    return "name: t\n"
           "datasets:\n"
           "  - type: mvtec\n"
           "    root: data/mvtec_sample\n"
           "    classes: [bottle, screw]\n"
           "backbones:\n"
           "  - name: demo\n"
           "    checkpoint: models/demo/tinyclip-vit-240.safetensors\n"
           "    model_config: models/demo/tinyclip-vit-240.json\n"
           "    random_weights: true\n"
           "grid:\n" +
           grid + "cache:\n  folder: results/cache\n" + extra;
}

Experiment parse(const std::string& text) {
    return parse_experiment(text, "experiments/x.yaml", kRepo);
}

std::string error_of(const std::string& text) {
    try {
        parse(text);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(ExperimentConfig, ReadsAndResolvesPathsAgainstTheFileFolder) {
    const auto e = parse(yaml_with("  shots: [0, 1]\n  seeds: [0, 1, 2]\n"));
    EXPECT_EQ(e.name, "t");
    ASSERT_EQ(e.datasets.size(), 1u);
    EXPECT_EQ(e.datasets[0].name, "mvtec");
    EXPECT_EQ(e.datasets[0].root, kRepo + "/data/mvtec_sample");
    EXPECT_EQ(e.backbones[0].name, "demo");
    EXPECT_TRUE(e.backbones[0].random_weights);
    EXPECT_EQ(e.cache_folder, kRepo + "/results/cache");
    EXPECT_EQ(e.shots, (std::vector<int>{0, 1}));
    EXPECT_EQ(e.switches.size(), 1u);
    EXPECT_FALSE(e.cache_float16);
    EXPECT_EQ(e.batch_size, 8);
}

TEST(ExperimentConfig, NegativeShotNamesKeyAndFile) {
    EXPECT_EQ(error_of(yaml_with("  shots: [0, 1, -1]\n")),
              "shots must be >= 0, got -1 (experiments/x.yaml: grid.shots[2])");
}

TEST(ExperimentConfig, UnknownKeysAreErrors) {
    EXPECT_NE(error_of(yaml_with("  shots: [0]\n  shot: [1]\n")).find("unknown key 'shot'"),
              std::string::npos);
    EXPECT_NE(
        error_of(yaml_with("  shots: [0]\n", "colour: red\n")).find("(experiments/x.yaml: colour)"),
        std::string::npos);
    const auto msg = error_of(yaml_with("  shots: [0]\n  switches:\n    - temprature: 0.1\n"));
    EXPECT_NE(msg.find("unknown key 'temprature'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("grid.switches[0].temprature"), std::string::npos) << msg;
}

TEST(ExperimentConfig, BadValuesAreErrors) {
    EXPECT_NE(error_of(yaml_with("  shots: [0, 0]\n")).find("duplicate shots 0"),
              std::string::npos);
    EXPECT_NE(error_of(yaml_with("  shots: [x]\n"))
                  .find("expected an integer, got 'x' (experiments/x.yaml: grid.shots[0])"),
              std::string::npos);
    EXPECT_NE(
        error_of(yaml_with("  shots: [1]\n  methods: [winclip]\n")).find("needs method winclip+"),
        std::string::npos);
    EXPECT_NE(error_of(yaml_with("  shots: [0]\n  switches:\n    - preset: nope\n"))
                  .find("unknown preset 'nope'"),
              std::string::npos);
    EXPECT_NE(error_of(yaml_with("  shots: [0]\n  switches:\n    - temperature: 0\n"))
                  .find("temperature"),
              std::string::npos);
    EXPECT_NE(
        error_of(yaml_with("  shots: [0]\n", "run:\n  batch_size: 0\n")).find("run.batch_size"),
        std::string::npos);
    EXPECT_NE(error_of(yaml_with("  shots: [0]\n", "run:\n  batch_size: 0\n"))
                  .find("batch_size must be >= 1, got 0"),
              std::string::npos);
    std::string text = yaml_with("  shots: [0]\n");
    text.replace(text.find("type: mvtec"), 11, "type: mnist");
    EXPECT_NE(error_of(text).find("datasets[0].type"), std::string::npos);
    text = yaml_with("  shots: [0]\n");
    text.replace(text.find("tinyclip-vit-240.safetensors"), 28, "missing.safetensors");
    EXPECT_NE(error_of(text).find("no such file"), std::string::npos);
    EXPECT_NE(error_of(text).find("backbones[0].checkpoint"), std::string::npos);
}

TEST(ExperimentConfig, RunDeviceReachesEveryBackboneAndIsChecked) {
    EXPECT_EQ(parse(yaml_with("  shots: [0]\n")).backbones[0].device, "auto");
    const Experiment e = parse(yaml_with("  shots: [0]\n", "run:\n  device: cuda:1\n"));
    EXPECT_EQ(e.device, "cuda:1");
    EXPECT_EQ(e.backbones[0].device, "cuda:1");
    EXPECT_EQ(e.to_json()["run"]["device"], "cuda:1");
    for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU"}) {
        const std::string error =
            error_of(yaml_with("  shots: [0]\n", std::string("run:\n  device: '") + bad + "'\n"));
        EXPECT_NE(error.find(std::string("got '") + bad + "' (experiments/x.yaml: run.device)"),
                  std::string::npos)
            << error;
    }
}

// Device selection is pure logic, so every branch is tested here without a
// GPU (this build's LibTorch has none).
TEST(DeviceChoice, AutoTakesTheNodeLocalGpuOrTheCpu) {
    EXPECT_EQ(method::choose_device("auto", false, 0, 3), "cpu");
    EXPECT_EQ(method::choose_device("auto", true, 0, 0), "cpu");  // CUDA built, no device
    EXPECT_EQ(method::choose_device("auto", true, 4, 0), "cuda:0");
    EXPECT_EQ(method::choose_device("auto", true, 4, 3), "cuda:3");
    EXPECT_EQ(method::choose_device("auto", true, 4, 6), "cuda:2");  // more ranks than GPUs
    EXPECT_EQ(method::choose_device("cuda", true, 2, 1), "cuda:1");
    EXPECT_EQ(method::choose_device("cpu", true, 8, 5), "cpu");
    EXPECT_EQ(method::choose_device("cuda:1", true, 2, 0), "cuda:1");
}

TEST(DeviceChoice, ImpossibleOrMalformedRequestsNameTheValue) {
    auto error = [](const std::string& request, bool cuda, int count) -> std::string {
        try {
            method::choose_device(request, cuda, count, 0);
        } catch (const ConfigError& e) {
            return e.what();
        }
        return "(no error)";
    };
    EXPECT_NE(error("cuda", false, 0).find("device 'cuda' asks for CUDA"), std::string::npos);
    EXPECT_NE(error("cuda:0", false, 0).find("device 'cuda:0' asks for CUDA"), std::string::npos);
    EXPECT_NE(error("cuda:2", true, 2).find("device 'cuda:2' does not exist"), std::string::npos);
    EXPECT_NE(error("cuda:2", true, 2).find("sees 2 CUDA device(s)"), std::string::npos);
    for (const std::string bad : {"cuda:", "cuda:x", "cuda:-1", "cuda:1x"}) {
        EXPECT_NE(error(bad, true, 2).find("device '" + bad + "' is malformed"), std::string::npos)
            << bad;
    }
    for (const std::string bad : {"gpu", "", "CPU", "mps"}) {
        EXPECT_NE(error(bad, true, 2).find("device '" + bad + "' is not one of"), std::string::npos)
            << bad;
    }
}

// The MPI session exports WINCLIP_LOCAL_RANK; without it the launchers' own
// variables are read.
TEST(DeviceChoice, NodeLocalRankComesFromTheEnvironment) {
    const char* names[] = {"WINCLIP_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                           "MPI_LOCALRANKID"};
    for (const char* n : names) ::unsetenv(n);
    EXPECT_EQ(method::node_local_rank(), 0);
    ::setenv("SLURM_LOCALID", "2", 1);
    EXPECT_EQ(method::node_local_rank(), 2);
    ::setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    EXPECT_EQ(method::node_local_rank(), 1);
    ::setenv("WINCLIP_LOCAL_RANK", "3", 1);
    EXPECT_EQ(method::node_local_rank(), 3);
    ::setenv("WINCLIP_LOCAL_RANK", "junk", 1);  // ignored, the next one counts
    EXPECT_EQ(method::node_local_rank(), 1);
    for (const char* n : names) ::unsetenv(n);
    EXPECT_EQ(method::device_for_this_process("cpu"), "cpu");
}

TEST(ExperimentConfig, MissingFileIsIoError) {
    EXPECT_THROW(load_experiment("/nonexistent/x.yaml"), IoError);
}

TEST(CellIds, JoinFieldsInDesignOrder) {
    EXPECT_EQ(make_cell_id("mvtec", "bottle", "vit-b-16-plus-240", "paper", "winclip+", 4, 1, ""),
              "mvtec/bottle/vit-b-16-plus-240/paper/winclip+/k4/seed1");
    EXPECT_EQ(make_cell_id("visa", "pcb1", "b", "p", "winclip", 0, 0, "t0.07+raw"),
              "visa/pcb1/b/p/winclip/k0/seed0/t0.07+raw");
    const std::string stem = cell_file_stem("mvtec/bottle/b/p/winclip/k0/seed0");
    EXPECT_EQ(stem.substr(0, 34), "mvtec__bottle__b__p__winclip__k0__");
    EXPECT_EQ(stem.find('/'), std::string::npos);
    EXPECT_NE(cell_file_stem("a/b"), cell_file_stem("a__b"));
}

// 2 classes x (k0 once + k1, k2 x 3 seeds) x 2 switch sets = 2 x 7 x 2 = 28.
TEST(Grid, ExpandsWithZeroShotOnceAndSortedStableIds) {
    const auto e =
        parse(yaml_with("  shots: [2, 0, 1]\n  seeds: [2, 0, 1]\n  switches:\n    - preset: paper\n"
                        "    - preset: paper\n      temperature: 0.07\n"));
    const auto cells = expand_grid(e, {{"bottle", "screw"}});
    ASSERT_EQ(cells.size(), 28u);
    for (size_t i = 1; i < cells.size(); ++i) EXPECT_LT(cells[i - 1].id, cells[i].id);
    size_t zero = 0;
    for (const auto& c : cells) {
        if (c.k == 0) {
            ++zero;
            EXPECT_EQ(c.seed, 0);
            EXPECT_EQ(c.method, "winclip");
        } else {
            EXPECT_EQ(c.method, "winclip+");
        }
    }
    EXPECT_EQ(zero, 4u);
    EXPECT_EQ(cells.front().id, "mvtec/bottle/demo/paper/winclip+/k1/seed0");
    bool has_suffix = false;
    for (const auto& c : cells)
        has_suffix |= c.id == "mvtec/screw/demo/paper/winclip/k0/seed0/t0.07";
    EXPECT_TRUE(has_suffix);
    // The same YAML expands to the same ids (stable across runs and ranks).
    const auto again = expand_grid(e, {{"bottle", "screw"}});
    for (size_t i = 0; i < cells.size(); ++i) EXPECT_EQ(cells[i].id, again[i].id);
}

TEST(Grid, PromptSetPathsAreNamedByStem) {
    EXPECT_EQ(prompt_set_id("paper"), "paper");
    EXPECT_EQ(prompt_set_id("/x/y/mine.yaml"), "mine");
}

}  // namespace
}  // namespace winclip::experiment
