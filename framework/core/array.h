// A plain dense array that crosses module boundaries without pulling LibTorch
// headers into modules that do not compute with it (cache, io, metrics, data).
#pragma once

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

namespace winclip {

template <typename T>
struct Array {
    std::vector<int64_t> shape;  // row-major
    std::vector<T> values;       // size == product of shape

    Array() = default;
    Array(std::vector<int64_t> shape_in, std::vector<T> values_in)
        : shape(std::move(shape_in)), values(std::move(values_in)) {}
    explicit Array(std::vector<int64_t> shape_in)
        : shape(std::move(shape_in)), values(static_cast<size_t>(numel(shape)), T{}) {}

    static int64_t numel(const std::vector<int64_t>& s) {
        return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<int64_t>());
    }
    int64_t numel() const { return numel(shape); }
    int64_t dim(size_t i) const { return shape.at(i); }
    T* data() { return values.data(); }
    const T* data() const { return values.data(); }
};

using FloatArray = Array<float>;
using DoubleArray = Array<double>;
using Int64Array = Array<int64_t>;

// "[5, 225, 128]" for error messages.
inline std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

}  // namespace winclip
