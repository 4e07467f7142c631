// `winclip bench`: times the CLIP image encoder as WinCLIP uses it (one image,
// its full token sequence plus every 2x2 and 3x3 window, paper section 4.2)
// and the text encoder on one class's prompt ensemble, with the real
// ViT-B-16-plus-240 architecture and random weights. The image rate is set
// against a float32 GEMM of the same shape class timed in the same run with
// the same threads, so the ratio says how close the forward pass gets to what
// the BLAS can do on this machine, whatever the machine.
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "apps/winclip/command.h"
#include "clip/model.h"
#include "clip/model_config.h"
#include "clip/tokenizer.h"
#include "core/context.h"
#include "core/error.h"
#include "core/log.h"
#include "winclip/prompts.h"

namespace winclip::cli {
namespace {

struct BenchOptions {
    int threads = 0;                                 // intra-op threads; 0 = cores available
    std::string dtype = "float32";                   // float32 or bfloat16 matrix products
    int repeat = 3;                                  // timed runs per figure (after one warm-up)
    std::string model_config = "ViT-B-16-plus-240";  // shipped backbone name or JSON path
    std::string prompt_set = "paper";                // prompt ensemble for the text timing
    std::string class_name = "bottle";               // class the prompts are built for
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median of `repeat` timed calls after one untimed warm-up call.
template <typename F>
double median_seconds(int repeat, F&& f) {
    f();
    std::vector<double> times;
    for (int i = 0; i < repeat; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        times.push_back(seconds_since(t0));
    }
    return median(times);
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one, five, fifteen;
    in >> one >> five >> fifteen;
    return one.empty() ? "unknown" : fmt::format("{} {} {} (1, 5, 15 min)", one, five, fifteen);
}

// Stride-1 k x k windows on a G x G grid as [k*k, n_windows] patch indices,
// windows row-major by their top-left patch (as the method builds them).
torch::Tensor window_indices(int64_t grid, int64_t k) {
    const int64_t n = grid - k + 1;
    torch::Tensor idx = torch::empty({k * k, n * n}, torch::kLong);
    auto a = idx.accessor<int64_t, 2>();
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < n; ++c) {
            for (int64_t i = 0; i < k; ++i) {
                for (int64_t j = 0; j < k; ++j) a[i * k + j][r * n + c] = (r + i) * grid + (c + j);
            }
        }
    }
    return idx;
}

int run_bench(const BenchOptions& opts) {
    if (opts.repeat < 1)
        throw ConfigError(fmt::format("--repeat must be >= 1, got {}", opts.repeat));
    if (opts.threads < 0)
        throw ConfigError(fmt::format("--threads must be >= 0, got {}", opts.threads));
    torch::ScalarType dtype;
    if (opts.dtype == "float32") {
        dtype = torch::kFloat;
    } else if (opts.dtype == "bfloat16") {
        dtype = torch::kBFloat16;
    } else {
        throw ConfigError(fmt::format("--dtype must be float32 or bfloat16, got {}", opts.dtype));
    }
    const int threads = opts.threads > 0 ? opts.threads : available_cores();
    torch::set_num_threads(threads);
    torch::InferenceMode inference;

    const bool is_path = opts.model_config.find('/') != std::string::npos ||
                         (opts.model_config.size() > 5 &&
                          opts.model_config.compare(opts.model_config.size() - 5, 5, ".json") == 0);
    const std::string config_path =
        is_path ? opts.model_config : clip::shipped_model_config_path(opts.model_config);
    const clip::ModelConfig config = clip::load_model_config(config_path);
    const std::string load_before = load_average();
    log::info("bench", "random weights: timings only, the model's outputs are meaningless");
    clip::ClipModel model = clip::ClipModel::random(config, /*seed=*/0);
    model.set_compute_dtype(dtype);

    // Image encoder: one image, its full sequence and every 2x2 and 3x3 window.
    const int64_t G = config.vision.grid_size(), S = config.vision.image_size;
    const std::vector<int> window_sizes = {2, 3};
    std::vector<torch::Tensor> windows;
    for (int k : window_sizes) windows.push_back(window_indices(G, k));
    const clip::VisionFlops flops = clip::vision_flops(config, window_sizes);
    const torch::Tensor pixels =
        torch::randn({1, 3, S, S}, at::detail::createCPUGenerator(1), torch::TensorOptions());

    // Reference GEMM: the packed tokens times the widest weight matrix. It is
    // timed right before each image run, so both see the same machine load;
    // the ratio is taken per run, then the median over runs.
    const int64_t M = flops.tokens, K = config.vision.width, N = config.vision.mlp_width();
    const torch::Tensor a = torch::randn({M, K}), b = torch::randn({K, N});
    const double gemm_flops = 2.0 * double(M) * double(K) * double(N);
    auto gemm = [&] { (void)torch::mm(a, b); };
    auto image = [&] { (void)model.encode_image(pixels, windows); };
    gemm();
    image();
    std::vector<double> gemm_times, image_times, ratios;
    for (int r = 0; r < opts.repeat; ++r) {
        const double g = median_seconds(4, gemm);
        const auto t0 = std::chrono::steady_clock::now();
        image();
        const double t = seconds_since(t0);
        gemm_times.push_back(g);
        image_times.push_back(t);
        ratios.push_back((flops.total() / t) / (gemm_flops / g));
    }
    const double gemm_s = median(gemm_times);
    const double image_s = median(image_times);
    const double ratio_all = median(ratios);
    double gemm_bf16_s = 0;
    if (dtype == torch::kBFloat16) {
        const torch::Tensor ab = a.to(dtype), bb = b.to(dtype);
        gemm_bf16_s = median_seconds(opts.repeat, [&] { (void)torch::mm(ab, bb); });
    }
    const int64_t peak_image = process_memory_bytes("VmHWM");

    // Text encoder: one class's prompt ensemble, truncated vs full length.
    const method::PromptSet set = method::load_prompt_set(opts.prompt_set);
    const method::PromptEnsemble ensemble = method::expand_prompts(set, opts.class_name);
    std::vector<std::string> prompts = ensemble.normal;
    prompts.insert(prompts.end(), ensemble.anomalous.begin(), ensemble.anomalous.end());
    const clip::Tokenizer tokenizer;
    const Int64Array ids_array = tokenizer.tokenize(prompts, config.text.context_length);
    const torch::Tensor ids = torch::from_blob(const_cast<int64_t*>(ids_array.values.data()),
                                               ids_array.shape, torch::kLong)
                                  .clone();
    const int64_t longest = ids.argmax(/*dim=*/1).max().item<int64_t>() + 1;
    torch::Tensor truncated_out, full_out;
    const double text_short_s = median_seconds(
        opts.repeat, [&] { truncated_out = model.encode_text(ids, /*truncate=*/true); });
    const double text_full_s =
        median_seconds(opts.repeat, [&] { full_out = model.encode_text(ids, /*truncate=*/false); });
    const double text_diff =
        ((truncated_out - full_out).abs().max() / full_out.abs().max()).item<double>();
    const int64_t peak_end = process_memory_bytes("VmHWM");
    const std::string load_after = load_average();

    // Report.
    const double gemm_rate = gemm_flops / gemm_s / 1e9;
    const double block_linear =
        double(flops.tokens) * config.vision.layers *
        (8.0 * K * K + 4.0 * double(K) * double(N));  // qkv, out-proj, MLP of every block
    const double image_rate = flops.total() / image_s / 1e9;
    const double ratio_block = ratio_all * block_linear / flops.total();
    std::printf(
        "%s",
        fmt::format(
            "winclip bench: {} (random weights), {} products, {} thread{}, median of {} run{}\n"
            "(each image run follows its own GEMM timing; ratios are medians of per-run ratios)\n"
            "load average before: {}; after: {}\n\n",
            config_path, opts.dtype, threads, threads == 1 ? "" : "s", opts.repeat,
            opts.repeat == 1 ? "" : "s", load_before, load_after)
            .c_str());
    std::printf("%s",
                fmt::format("{:<52} {:>10} {:>14}\n", "measurement", "seconds", "GFLOP/s").c_str());
    std::printf("%s", fmt::format("{:<52} {:>10.4f} {:>14.1f}\n",
                                  fmt::format("float32 GEMM [{} x {}] x [{} x {}]", M, K, K, N),
                                  gemm_s, gemm_rate)
                          .c_str());
    if (gemm_bf16_s > 0) {
        std::printf("%s", fmt::format("{:<52} {:>10.4f} {:>14.1f}\n", "bfloat16 GEMM, same shape",
                                      gemm_bf16_s, gemm_flops / gemm_bf16_s / 1e9)
                              .c_str());
    }
    std::printf("%s", fmt::format("{:<52} {:>10.4f} {:>14.1f}\n",
                                  fmt::format("image encoder, 1 image + {} windows",
                                              windows[0].size(1) + windows[1].size(1)),
                                  image_s, image_rate)
                          .c_str());
    std::printf("%s", fmt::format("{:<52} {:>10.4f} {:>14}\n",
                                  fmt::format("text encoder, {} prompts, up to token {}",
                                              prompts.size(), longest),
                                  text_short_s, "")
                          .c_str());
    std::printf("%s", fmt::format("{:<52} {:>10.4f} {:>14}\n",
                                  fmt::format("text encoder, {} prompts, full {} tokens",
                                              prompts.size(), config.text.context_length),
                                  text_full_s, "")
                          .c_str());
    std::printf("\n");
    std::printf("%s", fmt::format("{:<52} {:>14}\n", "figure", "value").c_str());
    auto row = [](const std::string& name, const std::string& value) {
        std::printf("%s", fmt::format("{:<52} {:>14}\n", name, value).c_str());
    };
    row("tokens per image (packed rows)", std::to_string(flops.tokens));
    row("FLOP per image, all (GFLOP)", fmt::format("{:.1f}", flops.total() / 1e9));
    row("  of which block linear layers (GFLOP)", fmt::format("{:.1f}", block_linear / 1e9));
    row("  of which attention products (GFLOP)", fmt::format("{:.1f}", flops.attention / 1e9));
    row("tokens/s", fmt::format("{:.0f}", double(flops.tokens) / image_s));
    row("ratio to float32 GEMM, all FLOP", fmt::format("{:.3f}", ratio_all));
    row("ratio to float32 GEMM, block linear FLOP only", fmt::format("{:.3f}", ratio_block));
    row("text speed-up, truncated vs full length",
        fmt::format("{:.2f}x", text_full_s / text_short_s));
    row("text truncated vs full, max rel. difference", fmt::format("{:.1e}", text_diff));
    row("peak RSS after the image encoder (MiB)", fmt::format("{:.0f}", peak_image / 1048576.0));
    row("peak RSS at the end (MiB)", fmt::format("{:.0f}", peak_end / 1048576.0));
    return 0;
}

const Registration kBench{
    "bench", "Time the CLIP image and text encoders (random weights) against a GEMM",
    [](CLI::App& app) {
        auto opts = std::make_shared<BenchOptions>();
        app.add_option("--threads", opts->threads, "intra-op threads; 0 = the cores available");
        app.add_option("--dtype", opts->dtype, "matrix products in float32 or bfloat16")
            ->check(CLI::IsMember({"float32", "bfloat16"}));
        app.add_option("--repeat", opts->repeat, "timed runs per figure (after one warm-up)");
        app.add_option("--model-config", opts->model_config,
                       "shipped backbone name (configs/backbones) or model-config JSON path");
        app.add_option("--prompt-set", opts->prompt_set, "prompt set for the text timing");
        app.add_option("--class", opts->class_name, "class the prompts are built for");
        return [opts]() -> int { return run_bench(*opts); };
    }};

}  // namespace
}  // namespace winclip::cli
