// Datasets know files, not models: which classes exist, which test images
// each class has (with labels, defect types and mask files), and which normal
// training images k-shot references may be drawn from.
//
// Every list is sorted by path in byte order, so the same folder gives the
// same order on every file system and platform. Structural problems (a class
// or split folder that is missing or empty, a defect image without its mask,
// a mask whose size differs from its image) are DatasetErrors that name the
// files involved.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/image.h"

namespace winclip::data {

// One test image.
struct Sample {
    std::string image_path;   // path to the image (root joined with the relative path)
    std::string mask_path;    // ground-truth mask; empty for normal samples
    int label = 0;            // 0 normal, 1 anomalous
    std::string defect_type;  // MVTec: "good" or the defect folder; VisA: "normal" / "anomaly"
};

class Dataset {
  public:
    virtual ~Dataset() = default;
    // "mvtec", "visa", "folder".
    virtual std::string kind() const = 0;
    const std::string& root() const { return root_; }
    // Class names, sorted.
    virtual std::vector<std::string> classes() const = 0;
    // Test images of a class, sorted by image path. DatasetError if the class
    // is unknown, has no test images, or a defect image lacks its mask.
    virtual std::vector<Sample> test_samples(const std::string& class_name) const = 0;
    // Normal training images of a class (the k-shot pool), sorted by path.
    // DatasetError if there are none or the folder is missing.
    virtual std::vector<std::string> train_good(const std::string& class_name) const = 0;

  protected:
    explicit Dataset(std::string root) : root_(std::move(root)) {}
    std::string root_;
};

// Opens a dataset by kind: "mvtec" (root is the folder holding the class
// folders), "visa" (root holds the class folders; `split_csv` defaults to
// <root>/split_csv/1cls.csv), "folder" (same layout rules as mvtec, with
// masks optional; see FolderDataset). ConfigError for an unknown kind,
// DatasetError for a missing root.
std::unique_ptr<Dataset> open_dataset(const std::string& kind, const std::string& root,
                                      const std::string& split_csv = "");

// The ground truth of a test sample at its image's native size: all zeros for
// a normal sample (the size read from the image header), else its mask file
// (any non-zero sample anomalous). DatasetError naming both files and both
// sizes if mask and image differ in size; IoError if either cannot be read.
io::Mask load_sample_mask(const Sample& sample);

// True for file names ending in .png, .jpg or .jpeg (any case).
bool is_image_file_name(const std::string& name);

// Regular image files directly inside `folder`, as full paths sorted in byte
// order. DatasetError naming the folder if it does not exist.
std::vector<std::string> list_images(const std::string& folder);

}  // namespace winclip::data
