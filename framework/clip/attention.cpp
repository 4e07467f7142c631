#include "clip/attention.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "core/error.h"

// LibTorch's batched matmul runs one small GEMM call per (sequence, head) on
// this build, which costs more than the arithmetic for windows of 5 or 10
// tokens. These two kernels do the products directly; they are compiled for
// AVX-512, AVX2 and baseline x86-64 and the loader picks the best clone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WINCLIP_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WINCLIP_MULTIVERSION
#endif

namespace winclip::clip::detail {
namespace {

struct Layout {
    const float* qkv;
    int64_t row_stride;  // 3 * width
    int64_t width;
    int64_t head_width;
    int64_t heads;
};

// scores[i, j] = scale * <q_i, k_j> for one (sequence, head); masked entries -inf.
WINCLIP_MULTIVERSION
void scores_task(const Layout& l, int64_t first_row, int64_t length, int64_t head, float scale,
                 bool causal, float* scores) {
    const int64_t hw = l.head_width;
    const float* base = l.qkv + first_row * l.row_stride + head * hw;
    for (int64_t i = 0; i < length; ++i) {
        const float* q = base + i * l.row_stride;
        const int64_t visible = causal ? i + 1 : length;
        for (int64_t j = 0; j < visible; ++j) {
            const float* k = base + j * l.row_stride + l.width;
            // 16 independent partial sums so the compiler can vectorise
            // without reassociating a single accumulator.
            float acc[16] = {0};
            int64_t d = 0;
            for (; d + 16 <= hw; d += 16) {
                for (int u = 0; u < 16; ++u) acc[u] += q[d + u] * k[d + u];
            }
            float sum = 0;
            for (; d < hw; ++d) sum += q[d] * k[d];
            for (int u = 0; u < 16; ++u) sum += acc[u];
            scores[i * length + j] = sum * scale;
        }
        for (int64_t j = visible; j < length; ++j) {
            scores[i * length + j] = -std::numeric_limits<float>::infinity();
        }
    }
}

// out_i = sum_j p[i, j] v_j for one (sequence, head).
WINCLIP_MULTIVERSION
void values_task(const Layout& l, int64_t first_row, int64_t length, int64_t head,
                 const float* probs, float* out, int64_t out_stride) {
    const int64_t hw = l.head_width;
    const float* v_base = l.qkv + first_row * l.row_stride + 2 * l.width + head * hw;
    for (int64_t i = 0; i < length; ++i) {
        float* o = out + (first_row + i) * out_stride + head * hw;
        for (int64_t d = 0; d < hw; ++d) o[d] = 0;
        for (int64_t j = 0; j < length; ++j) {
            const float p = probs[i * length + j];
            if (p == 0.0f) continue;  // masked (causal) positions
            const float* v = v_base + j * l.row_stride;
            for (int64_t d = 0; d < hw; ++d) o[d] += p * v[d];
        }
    }
}

}  // namespace

torch::Tensor packed_attention(const torch::Tensor& qkv, const std::vector<SequenceGroup>& groups,
                               int64_t heads, bool causal) {
    WINCLIP_CHECK(qkv.dim() == 2 && qkv.scalar_type() == torch::kFloat && qkv.is_contiguous());
    WINCLIP_CHECK(qkv.size(1) % (3 * heads) == 0);
    const int64_t width = qkv.size(1) / 3;
    const Layout layout{qkv.data_ptr<float>(), qkv.size(1), width, width / heads, heads};
    const float scale = 1.0f / std::sqrt(static_cast<float>(layout.head_width));
    torch::Tensor out = torch::zeros({qkv.size(0), width}, qkv.options());
    float* out_ptr = out.data_ptr<float>();

    for (const SequenceGroup& g : groups) {
        WINCLIP_CHECK(g.offset >= 0 && g.offset + g.count * g.length <= qkv.size(0));
        if (g.count == 0) continue;
        const int64_t tasks = g.count * heads;
        const int64_t square = g.length * g.length;
        torch::Tensor scores = torch::empty({tasks, g.length, g.length}, qkv.options());
        float* s = scores.data_ptr<float>();
        // Grain: enough (sequence, head) pairs per chunk to amortise scheduling.
        const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, square));
        at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
            for (int64_t t = begin; t < end; ++t) {
                scores_task(layout, g.offset + (t / heads) * g.length, g.length, t % heads, scale,
                            causal, s + t * square);
            }
        });
        // LibTorch's softmax is vectorised (exp included) and subtracts the row max.
        torch::Tensor probs = torch::softmax(scores, /*dim=*/-1);
        const float* p = probs.data_ptr<float>();
        at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
            for (int64_t t = begin; t < end; ++t) {
                values_task(layout, g.offset + (t / heads) * g.length, g.length, t % heads,
                            p + t * square, out_ptr, width);
            }
        });
    }
    return out;
}

}  // namespace winclip::clip::detail
