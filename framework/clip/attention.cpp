#include "clip/attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

// LibTorch's batched matmul runs one small GEMM call per (sequence, head) on
// this build, which costs more than the arithmetic for windows of 5 or 10
// tokens, and its softmax is one more pass and parallel region. This kernel
// fuses scores, softmax and the value product per (sequence, head), and runs
// every group in one parallel region split by cost. It is compiled for
// AVX-512, AVX2 and baseline x86-64; the loader picks the best clone.
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
    float* out;  // [T, width]
};

// exp(x) for x <= 0 (scores minus their row maximum), written so the compiler
// can vectorise it: x = n ln 2 + r with |r| <= ln 2 / 2, a degree-6 polynomial
// for e^r (Cephes' expf coefficients, about 1 ulp), and 2^n from the exponent bits.
inline float exp_nonpositive(float x) {
    x = std::max(x, -87.0f);  // below this e^x is under FLT_MIN; treat as such
    const float n = std::floor(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// One (sequence, head): out_i = softmax_j(<q_i, k_j> / sqrt(hw)) v_j, with j <= i
// when causal. `kt` is scratch for K transposed [hw, length], `s` for one
// row of scores [length].
WINCLIP_MULTIVERSION
void attend(const Layout& l, int64_t first_row, int64_t length, int64_t head, float scale,
            bool causal, float* kt, float* s) {
    const int64_t hw = l.head_width;
    const float* q_base = l.qkv + first_row * l.row_stride + head * hw;
    const float* k_base = q_base + l.width;
    const float* v_base = q_base + 2 * l.width;
    // Long sequences: K transposed, so the scores of one query are a sum of
    // contiguous vectors over keys (no horizontal reductions). Short ones (the
    // windows): too few keys to fill a vector, so dot products over the head
    // width instead.
    const bool transposed = length > 16;
    if (transposed) {
        for (int64_t j = 0; j < length; ++j) {
            const float* k = k_base + j * l.row_stride;
            for (int64_t d = 0; d < hw; ++d) kt[d * length + j] = k[d];
        }
    }
    for (int64_t i = 0; i < length; ++i) {
        const float* q = q_base + i * l.row_stride;
        const int64_t visible = causal ? i + 1 : length;
        if (transposed) {
            for (int64_t j = 0; j < visible; ++j) s[j] = 0.0f;
            for (int64_t d = 0; d < hw; ++d) {
                const float qd = q[d] * scale;
                const float* row = kt + d * length;
                for (int64_t j = 0; j < visible; ++j) s[j] += qd * row[j];
            }
        } else {
            for (int64_t j = 0; j < visible; ++j) {
                const float* k = k_base + j * l.row_stride;
                // 16 partial sums: vectorisable without reassociating one accumulator.
                float acc[16] = {0};
                int64_t d = 0;
                for (; d + 16 <= hw; d += 16) {
                    for (int u = 0; u < 16; ++u) acc[u] += q[d + u] * k[d + u];
                }
                float dot = 0.0f;
                for (; d < hw; ++d) dot += q[d] * k[d];
                for (int u = 0; u < 16; ++u) dot += acc[u];
                s[j] = dot * scale;
            }
        }
        float max = s[0];
        for (int64_t j = 1; j < visible; ++j) max = std::max(max, s[j]);
        float sum = 0.0f;
        for (int64_t j = 0; j < visible; ++j) {
            s[j] = exp_nonpositive(s[j] - max);
            sum += s[j];
        }
        const float inv = 1.0f / sum;
        float* o = l.out + (first_row + i) * l.width + head * hw;
        for (int64_t d = 0; d < hw; ++d) o[d] = 0.0f;
        for (int64_t j = 0; j < visible; ++j) {
            const float p = s[j] * inv;
            const float* v = v_base + j * l.row_stride;
            for (int64_t d = 0; d < hw; ++d) o[d] += p * v[d];
        }
    }
}

}  // namespace

torch::Tensor packed_attention_ops(const torch::Tensor& qkv,
                                   const std::vector<SequenceGroup>& groups, int64_t heads,
                                   bool causal) {
    WINCLIP_CHECK(qkv.dim() == 2 && qkv.size(1) % (3 * heads) == 0);
    const int64_t width = qkv.size(1) / 3, hw = width / heads;
    torch::Tensor out = torch::zeros({qkv.size(0), width}, qkv.options());
    const double scale = 1.0 / std::sqrt(static_cast<double>(hw));
    for (const SequenceGroup& g : groups) {
        WINCLIP_CHECK(g.offset >= 0 && g.count >= 0 && g.length >= 1 &&
                      g.offset + g.count * g.length <= qkv.size(0));
        if (g.count == 0) continue;
        // [count, length, q|k|v, heads, hw] -> three [count, heads, length, hw].
        const torch::Tensor x =
            qkv.narrow(0, g.offset, g.count * g.length).view({g.count, g.length, 3, heads, hw});
        const torch::Tensor q = x.select(2, 0).permute({0, 2, 1, 3});
        const torch::Tensor k = x.select(2, 1).permute({0, 2, 1, 3});
        const torch::Tensor v = x.select(2, 2).permute({0, 2, 1, 3});
        torch::Tensor s = torch::matmul(q, k.transpose(-2, -1)).mul_(scale);
        if (causal) {
            const torch::Tensor later = torch::ones({g.length, g.length},
                                                    qkv.options().dtype(torch::kBool))
                                            .triu(1);
            s.masked_fill_(later, -std::numeric_limits<float>::infinity());
        }
        const torch::Tensor o = torch::matmul(torch::softmax(s, -1), v);
        out.narrow(0, g.offset, g.count * g.length)
            .copy_(o.permute({0, 2, 1, 3}).reshape({g.count * g.length, width}));
    }
    return out;
}

torch::Tensor packed_attention(const torch::Tensor& qkv, const std::vector<SequenceGroup>& groups,
                               int64_t heads, bool causal) {
    if (!qkv.is_cpu()) return packed_attention_ops(qkv, groups, heads, causal);
    WINCLIP_CHECK(qkv.dim() == 2 && qkv.scalar_type() == torch::kFloat && qkv.is_contiguous());
    WINCLIP_CHECK(qkv.size(1) % (3 * heads) == 0);
    const int64_t width = qkv.size(1) / 3;
    torch::Tensor out = torch::zeros({qkv.size(0), width}, qkv.options());
    const Layout layout{qkv.data_ptr<float>(), qkv.size(1), width,
                        width / heads,         heads,       out.data_ptr<float>()};
    const float scale = 1.0f / std::sqrt(static_cast<float>(layout.head_width));

    // Tasks are (group, sequence, head), numbered group by group. Their cost
    // grows with length^2, so the range is cut into pieces of equal cost (a
    // few per thread) rather than of equal count.
    std::vector<int64_t> first_task;  // per group
    std::vector<double> cost_before;  // per group: total cost of earlier groups
    int64_t tasks = 0, max_length = 1;
    double total_cost = 0;
    for (const SequenceGroup& g : groups) {
        WINCLIP_CHECK(g.offset >= 0 && g.count >= 0 && g.length >= 1 &&
                      g.offset + g.count * g.length <= qkv.size(0));
        first_task.push_back(tasks);
        cost_before.push_back(total_cost);
        tasks += g.count * heads;
        total_cost += double(g.count * heads) * double(g.length) * double(g.length + 8);
        max_length = std::max(max_length, g.length);
    }
    if (tasks == 0) return out;
    // The task at which cumulative cost reaches `c`.
    auto task_at_cost = [&](double c) -> int64_t {
        for (size_t gi = groups.size(); gi-- > 0;) {
            if (c >= cost_before[gi]) {
                const SequenceGroup& g = groups[gi];
                const double per = double(g.length) * double(g.length + 8);
                const int64_t k = static_cast<int64_t>((c - cost_before[gi]) / per);
                return std::min(first_task[gi] + k,
                                gi + 1 < groups.size() ? first_task[gi + 1] : tasks);
            }
        }
        return 0;
    };
    const int64_t pieces = std::min<int64_t>(tasks, 4 * std::max(1, at::get_num_threads()));
    at::parallel_for(0, pieces, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> scratch(
            static_cast<size_t>(layout.head_width * max_length + max_length));
        for (int64_t piece = begin; piece < end; ++piece) {
            const int64_t t0 = task_at_cost(total_cost * double(piece) / double(pieces));
            const int64_t t1 = piece + 1 == pieces
                                   ? tasks
                                   : task_at_cost(total_cost * double(piece + 1) / double(pieces));
            size_t gi = 0;
            for (int64_t t = t0; t < t1; ++t) {
                while (gi + 1 < groups.size() && t >= first_task[gi + 1]) ++gi;
                const SequenceGroup& g = groups[gi];
                const int64_t local = t - first_task[gi];
                attend(layout, g.offset + (local / heads) * g.length, g.length, local % heads,
                       scale, causal, scratch.data(),
                       scratch.data() + layout.head_width * max_length);
            }
        }
    });
    return out;
}

}  // namespace winclip::clip::detail
