// Multi-head scaled dot-product attention over packed sequences, the kernel
// behind ClipModel's packed forward pass. Internal to the clip module.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace winclip::clip::detail {

// A run of `count` sequences of `length` tokens each, stored as consecutive
// rows of the packed token matrix starting at row `offset`.
struct SequenceGroup {
    int64_t offset = 0;
    int64_t count = 0;
    int64_t length = 0;
};

// qkv: [T, 3 * width] float32, rows = tokens, columns = q | k | v, each split
// into `heads` heads of width / heads columns (OpenCLIP's in_proj layout).
// Returns [T, width] float32: softmax(q k^T / sqrt(head_width)) v per head,
// attending only within each sequence (and only to earlier tokens if
// `causal`). Rows not covered by a group are left zero.
// On the CPU this runs a hand-written kernel; on other devices (CUDA) it
// runs packed_attention_ops.
torch::Tensor packed_attention(const torch::Tensor& qkv, const std::vector<SequenceGroup>& groups,
                               int64_t heads, bool causal);

// The same computation from LibTorch operators (batched matmul and softmax
// per group), on whatever device qkv lives; equal to the CPU kernel up to
// float rounding.
torch::Tensor packed_attention_ops(const torch::Tensor& qkv,
                                   const std::vector<SequenceGroup>& groups, int64_t heads,
                                   bool causal);

}  // namespace winclip::clip::detail
