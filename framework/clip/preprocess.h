// OpenCLIP's evaluation transform, without LibTorch:
//   Resize(S, BICUBIC) -> CenterCrop(S) -> convert("RGB") -> ToTensor -> Normalize
// The paper (section 4, implementation details) feeds CLIP's own preprocessing;
// matching it bit for bit matters because the model saw exactly these pixels.
//
// The resize reproduces Pillow's ImagingResample for 8-bit images: a separable
// convolution, horizontal pass first, then vertical, with the bicubic kernel
// (a = -0.5) stretched by the scale factor when shrinking (antialiasing), the
// coefficients normalised to sum 1, turned into 22-bit fixed point, and every
// pass rounded and clipped to 8 bits. The output size and crop offsets follow
// torchvision: the shorter side becomes S, the longer int(S * long / short)
// (truncated), and the crop starts at int(round((len - S) / 2.0)) with
// Python's round-half-to-even.
#pragma once

#include <string>
#include <vector>

#include "core/array.h"
#include "io/image.h"

namespace winclip::clip {

// OpenCLIP's (OpenAI CLIP's) normalisation constants, per RGB channel.
constexpr double kClipMean[3] = {0.48145466, 0.4578275, 0.40821073};
constexpr double kClipStd[3] = {0.26862954, 0.26130258, 0.27577711};

// Where the model input came from in the original image.
struct PreprocessGeometry {
    int width = 0, height = 0;                  // original image
    int resized_width = 0, resized_height = 0;  // after the shorter-side resize
    int crop_left = 0, crop_top = 0;            // crop offset in resized pixels
    int size = 0;                               // S, the crop's side
    // The crop's footprint in original pixel coordinates (edges, not centres):
    // x0 = crop_left * width / resized_width, x1 = (crop_left + S) * width /
    // resized_width, likewise for y. Pixel i of the original spans [i, i + 1).
    double crop_x0 = 0, crop_y0 = 0, crop_x1 = 0, crop_y1 = 0;
};

// torchvision Resize(size) with an int size: the shorter side becomes `size`,
// the longer int(size * long / short). Returns {width, height}.
io::ImageSize shorter_side_size(int width, int height, int size);

// torchvision CenterCrop offset along one axis: int(round((length - crop) / 2.0)),
// round half to even. Requires length >= crop.
int center_crop_offset(int length, int crop);

// Pillow's Image.resize(..., BICUBIC) of an 8-bit image, in its own mode.
// RGBA and LA are premultiplied by alpha around the filter, as Pillow does;
// images with `nearest_only` (palette, 1-bit) use Pillow's NEAREST instead.
// Sizes must be positive (a caller bug otherwise: WINCLIP_CHECK).
io::DecodedImage resize_bicubic(const io::DecodedImage& image, int width, int height);

// Resize the shorter side to `size`, centre crop size x size, convert to RGB.
// Returns the un-normalised 8-bit crop; fills `geometry` when given.
io::RgbImage resize_crop(const io::DecodedImage& image, int size,
                         PreprocessGeometry* geometry = nullptr);

// ToTensor + Normalize of an RGB image: [3, H, W] float32, CLIP-normalised,
// computed in float32 like torchvision ((v / 255 - mean) / std).
FloatArray normalize_rgb(const io::RgbImage& image);

// The whole transform: [3, size, size] float32, CLIP-normalised.
FloatArray preprocess(const io::DecodedImage& image, int size,
                      PreprocessGeometry* geometry = nullptr);
// Decodes `path` (IoError naming it on failure) and preprocesses it.
FloatArray preprocess_file(const std::string& path, int size,
                           PreprocessGeometry* geometry = nullptr);

// Several files into one batch: [N, 3, size, size] float32, CLIP-normalised,
// in the order given. `geometry`, when given, is resized to N and filled.
FloatArray preprocess_files(const std::vector<std::string>& paths, int size,
                            std::vector<PreprocessGeometry>* geometry = nullptr);

}  // namespace winclip::clip
