// MVTec AD in its official layout (Bergmann et al., CVPR 2019), the paper's
// main benchmark (WinCLIP, section 5.1):
//   <root>/<class>/train/good/*.png
//   <root>/<class>/test/<good|defect>/*.png
//   <root>/<class>/ground_truth/<defect>/<stem>_mask.png
#pragma once

#include "data/dataset.h"

namespace winclip::data {

class MvtecDataset : public Dataset {
  public:
    // `require_masks` false gives the generic "folder" dataset: the same
    // layout, but anomalous images may lack masks (image metrics only).
    explicit MvtecDataset(std::string root, bool require_masks = true);

    std::string kind() const override { return require_masks_ ? "mvtec" : "folder"; }
    // Every sub-folder of the root that holds a train or test folder.
    std::vector<std::string> classes() const override;
    // test/good is label 0 with no mask; every other test folder is label 1
    // with mask ground_truth/<defect>/<stem>_mask.png, which must exist when
    // masks are required.
    std::vector<Sample> test_samples(const std::string& class_name) const override;
    std::vector<std::string> train_good(const std::string& class_name) const override;

  private:
    std::string class_folder(const std::string& class_name) const;
    bool require_masks_;
};

}  // namespace winclip::data
