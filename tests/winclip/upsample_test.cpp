// Bilinear upsampling to the model input and onto the original image.
#include <gtest/gtest.h>

#include "core/error.h"
#include "winclip/pipeline.h"

namespace winclip::method {
namespace {

constexpr float kTol = 1e-6f;  // float32 rounding of exact quarter-step values

// 2x2 grid with value 2 * row + col: bilinear interpolation of a plane is the
// plane itself, evaluated at the clamped source coordinates.
FloatArray plane2x2() { return FloatArray({2, 2}, {0.f, 1.f, 2.f, 3.f}); }

TEST(UpsampleToInput, TwoByTwoToFourByFourMatchesHandValues) {
    // align_corners=false: source coordinate (x + 0.5) / 2 - 0.5 = -0.25, 0.25,
    // 0.75, 1.25, clamped to 0, 0.25, 0.75, 1.
    const FloatArray out = upsample_to_input(plane2x2(), 4);
    ASSERT_EQ(out.shape, (std::vector<int64_t>{4, 4}));
    const float expected[16] = {0.0f, 0.25f, 0.75f, 1.0f, 0.5f, 0.75f, 1.25f, 1.5f,
                                1.5f, 1.75f, 2.25f, 2.5f, 2.0f, 2.25f, 2.75f, 3.0f};
    for (int i = 0; i < 16; ++i) EXPECT_NEAR(out.values[i], expected[i], kTol) << i;
}

TEST(UpsampleToInput, SameSizeIsIdentity) {
    const FloatArray out = upsample_to_input(plane2x2(), 2);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(out.values[i], plane2x2().values[i], kTol);
}

TEST(UpsampleToNative, NonSquareImageClampsOutsideTheCrop) {
    // A 6 x 4 image whose centre crop is the 4 x 4 square x in [1, 5): grid cells
    // are 2 pixels wide. Columns 0 and 5 lie outside the crop and repeat the
    // nearest column; x coordinates (x + 0.5 - 1) / 2 - 0.5 clamp to
    // 0, 0, 0.25, 0.75, 1, 1; y coordinates to 0, 0.25, 0.75, 1.
    ImageGeometry geo;
    geo.width = 6;
    geo.height = 4;
    geo.crop_x0 = 1;
    geo.crop_x1 = 5;
    geo.crop_y0 = 0;
    geo.crop_y1 = 4;
    const FloatArray out = upsample_to_native(plane2x2(), geo);
    ASSERT_EQ(out.shape, (std::vector<int64_t>{4, 6}));
    const float sy[4] = {0.f, 0.25f, 0.75f, 1.f};
    const float sx[6] = {0.f, 0.f, 0.25f, 0.75f, 1.f, 1.f};
    for (int y = 0; y < 4; ++y) {
        for (int x = 0; x < 6; ++x) {
            EXPECT_NEAR(out.values[y * 6 + x], 2 * sy[y] + sx[x], kTol) << y << "," << x;
        }
    }
}

TEST(UpsampleToNative, FractionalCropOnTallImage) {
    // A 3 x 5 image, crop footprint y in [0.5, 3.5): grid rows are 1.5 pixels.
    // y coordinate (y + 0.5 - 0.5) / 1.5 - 0.5 = -0.5, 1/6, 5/6, 1.5, 13/6 ->
    // clamped 0, 1/6, 5/6, 1, 1. x: (x + 0.5) / 1.5 - 0.5 = -1/6, 0.5, 7/6 ->
    // 0, 0.5, 1.
    ImageGeometry geo;
    geo.width = 3;
    geo.height = 5;
    geo.crop_x0 = 0;
    geo.crop_x1 = 3;
    geo.crop_y0 = 0.5;
    geo.crop_y1 = 3.5;
    const FloatArray out = upsample_to_native(plane2x2(), geo);
    ASSERT_EQ(out.shape, (std::vector<int64_t>{5, 3}));
    const double sy[5] = {0, 1.0 / 6, 5.0 / 6, 1, 1};
    const double sx[3] = {0, 0.5, 1};
    for (int y = 0; y < 5; ++y) {
        for (int x = 0; x < 3; ++x) {
            EXPECT_NEAR(out.values[y * 3 + x], 2 * sy[y] + sx[x], kTol) << y << "," << x;
        }
    }
}

TEST(UpsampleToNative, FullFootprintEqualsUpsampleToInput) {
    FloatArray grid({15, 15});
    for (int i = 0; i < 225; ++i) grid.values[i] = static_cast<float>((i * 37) % 101) / 100.f;
    ImageGeometry geo;
    geo.width = geo.height = 240;
    geo.crop_x1 = geo.crop_y1 = 240;
    const FloatArray a = upsample_to_native(grid, geo);
    const FloatArray b = upsample_to_input(grid, 240);
    ASSERT_EQ(a.shape, b.shape);
    for (size_t i = 0; i < a.values.size(); ++i) ASSERT_NEAR(a.values[i], b.values[i], kTol) << i;
}

TEST(Upsample, RejectsBadShapesAndGeometry) {
    EXPECT_THROW(upsample_to_input(FloatArray({4}, {0, 1, 2, 3}), 8), ConfigError);
    EXPECT_THROW(upsample_to_input(plane2x2(), 0), ConfigError);
    ImageGeometry geo;
    geo.width = 4;
    geo.height = 4;  // empty crop footprint
    EXPECT_THROW(upsample_to_native(plane2x2(), geo), ConfigError);
}

}  // namespace
}  // namespace winclip::method
