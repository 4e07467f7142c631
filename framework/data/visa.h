// VisA (Zou et al., ECCV 2022), the paper's second benchmark (WinCLIP,
// section 5.1), read through its official split CSV with the columns
// object,split,label,image,mask (any order; other columns ignored). Paths in
// the CSV are relative to the dataset root. In the "1cls" split, split is
// train or test and label normal or anomaly; masks hold class ids, so any
// non-zero pixel is anomalous (load_sample_mask does exactly that).
#pragma once

#include <map>

#include "data/dataset.h"

namespace winclip::data {

class VisaDataset : public Dataset {
  public:
    // Reads and validates the whole CSV. DatasetError naming the CSV and line
    // for a missing column, an unknown split or label, or an anomalous test
    // row without a mask. IoError if the CSV cannot be read.
    VisaDataset(std::string root, std::string split_csv);

    std::string kind() const override { return "visa"; }
    const std::string& split_csv() const { return csv_; }
    std::vector<std::string> classes() const override;
    // Checks that every listed image (and mask) exists; DatasetError naming the
    // CSV line and path otherwise.
    std::vector<Sample> test_samples(const std::string& class_name) const override;
    std::vector<std::string> train_good(const std::string& class_name) const override;

  private:
    struct Row {
        Sample sample;
        int line = 0;  // 1-based line in the CSV, for messages
    };
    struct ClassRows {
        std::vector<Row> train_good;
        std::vector<Row> test;
    };
    const ClassRows& rows_of(const std::string& class_name) const;

    std::string csv_;
    std::map<std::string, ClassRows> classes_;
};

}  // namespace winclip::data
