#include "data/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "../io/image_writer.h"
#include "core/error.h"
#include "data/mvtec.h"
#include "data/visa.h"

namespace winclip::data {
namespace {

namespace fs = std::filesystem;
using winclip::testing::PngSpec;
using winclip::testing::TempDir;

const std::string kMvtec = std::string(WINCLIP_REPO_ROOT) + "/data/mvtec_sample";

// Expects `call` to throw E whose message contains every string in `parts`.
template <typename E, typename F>
void expect_error(F call, const std::vector<std::string>& parts) {
    try {
        call();
        FAIL() << "expected an exception";
    } catch (const E& e) {
        const std::string message = e.what();
        for (const auto& part : parts) {
            EXPECT_NE(message.find(part), std::string::npos)
                << "message '" << message << "' lacks '" << part << "'";
        }
    }
}

void write_gray(const std::string& path, int w, int h, uint16_t value = 0) {
    fs::create_directories(fs::path(path).parent_path());
    testing::write_png(path, PngSpec{w,
                                     h,
                                     PNG_COLOR_TYPE_GRAY,
                                     8,
                                     false,
                                     std::vector<uint16_t>(size_t(w) * h, value),
                                     {},
                                     {}});
}

std::string tail(const std::string& path, const std::string& root) {
    return path.substr(root.size() + 1);
}

TEST(Mvtec, ListsTheSampleClassesAndFiles) {
    MvtecDataset mvtec(kMvtec);
    EXPECT_EQ(mvtec.classes(), (std::vector<std::string>{"bottle", "screw"}));
    const std::vector<Sample> samples = mvtec.test_samples("bottle");
    ASSERT_EQ(samples.size(), 5u);
    const std::vector<std::string> expected = {
        "bottle/test/broken_large/006.png", "bottle/test/broken_small/000.png",
        "bottle/test/contamination/005.png", "bottle/test/good/000.png",
        "bottle/test/good/001.png"};
    for (size_t i = 0; i < samples.size(); ++i) {
        EXPECT_EQ(tail(samples[i].image_path, kMvtec), expected[i]);
    }
    EXPECT_EQ(samples[0].label, 1);
    EXPECT_EQ(samples[0].defect_type, "broken_large");
    EXPECT_EQ(tail(samples[0].mask_path, kMvtec), "bottle/ground_truth/broken_large/006_mask.png");
    EXPECT_EQ(samples[3].label, 0);
    EXPECT_EQ(samples[3].defect_type, "good");
    EXPECT_TRUE(samples[3].mask_path.empty());

    const std::vector<std::string> train = mvtec.train_good("screw");
    ASSERT_EQ(train.size(), 3u);
    EXPECT_EQ(tail(train[0], kMvtec), "screw/train/good/000.png");
    EXPECT_EQ(tail(train[2], kMvtec), "screw/train/good/002.png");
}

TEST(Mvtec, SampleMasksHaveTheImageSize) {
    const std::vector<Sample> samples = MvtecDataset(kMvtec).test_samples("bottle");
    const io::Mask defect = load_sample_mask(samples[1]);
    EXPECT_EQ(defect.width, 900);
    EXPECT_EQ(defect.height, 900);
    EXPECT_GT(std::count(defect.values.begin(), defect.values.end(), 1), 0);
    const io::Mask good = load_sample_mask(samples[3]);
    EXPECT_EQ(good.width, 900);
    EXPECT_EQ(std::count(good.values.begin(), good.values.end(), 0), 900 * 900);
}

TEST(Mvtec, DefectWithoutMaskNamesTheExpectedMaskPath) {
    TempDir dir;
    const std::string root = dir.path().string();
    write_gray(root + "/cable/train/good/000.png", 4, 4);
    write_gray(root + "/cable/test/cut/003.png", 4, 4);
    expect_error<DatasetError>([&] { MvtecDataset(root).test_samples("cable"); },
                               {root + "/cable/ground_truth/cut/003_mask.png", "003.png"});
    // The generic folder dataset accepts it; only pixel metrics need the mask.
    const std::vector<Sample> samples = MvtecDataset(root, false).test_samples("cable");
    ASSERT_EQ(samples.size(), 1u);
    EXPECT_EQ(samples[0].label, 1);
    EXPECT_TRUE(samples[0].mask_path.empty());
    expect_error<DatasetError>([&] { load_sample_mask(samples[0]); }, {"003.png", "no"});
}

TEST(Mvtec, MissingOrEmptyTrainGoodIsAnError) {
    TempDir dir;
    const std::string root = dir.path().string();
    write_gray(root + "/grid/test/good/000.png", 4, 4);
    expect_error<DatasetError>([&] { MvtecDataset(root).train_good("grid"); },
                               {"grid", root + "/grid/train/good"});
    fs::create_directories(root + "/grid/train/good");
    std::ofstream(root + "/grid/train/good/notes.txt") << "not an image";
    expect_error<DatasetError>([&] { MvtecDataset(root).train_good("grid"); },
                               {"grid", "no normal training images"});
    expect_error<DatasetError>([&] { MvtecDataset(root).test_samples("tile"); }, {"tile"});
    fs::create_directories(root + "/wood/test");
    expect_error<DatasetError>([&] { MvtecDataset(root).test_samples("wood"); },
                               {"wood", "no test images"});
}

TEST(Mvtec, MaskSizeMismatchNamesBothFilesAndSizes) {
    TempDir dir;
    const std::string root = dir.path().string();
    write_gray(root + "/pill/train/good/000.png", 6, 5);
    write_gray(root + "/pill/test/crack/000.png", 6, 5);
    write_gray(root + "/pill/ground_truth/crack/000_mask.png", 5, 6, 255);
    const std::vector<Sample> samples = MvtecDataset(root).test_samples("pill");
    expect_error<DatasetError>([&] { load_sample_mask(samples[0]); },
                               {samples[0].image_path, samples[0].mask_path, "5 x 6", "6 x 5"});
}

// Byte order puts upper case before '_' before lower case, whatever the locale;
// files that are not images are skipped.
TEST(Mvtec, FilesAreSortedInByteOrder) {
    TempDir dir;
    const std::string root = dir.path().string();
    for (const char* name : {"b.png", "B.png", "_x.png", "a.JPG", "10.png", "9.png"}) {
        write_gray(root + "/toy/train/good/" + name, 2, 2);
    }
    std::ofstream(root + "/toy/train/good/readme.txt") << "skip me";
    std::vector<std::string> names;
    for (const auto& f : MvtecDataset(root).train_good("toy"))
        names.push_back(fs::path(f).filename());
    EXPECT_EQ(names,
              (std::vector<std::string>{"10.png", "9.png", "B.png", "_x.png", "a.JPG", "b.png"}));
}

TEST(Dataset, OpenDatasetChecksKindAndRoot) {
    EXPECT_EQ(open_dataset("mvtec", kMvtec)->kind(), "mvtec");
    EXPECT_EQ(open_dataset("folder", kMvtec)->kind(), "folder");
    expect_error<ConfigError>([&] { open_dataset("mvtec-ad", kMvtec); }, {"mvtec-ad"});
    expect_error<DatasetError>([&] { open_dataset("mvtec", kMvtec + "/nope"); }, {"nope"});
}

// A miniature VisA: the official CSV layout over tiny generated images.
class VisaTest : public ::testing::Test {
  protected:
    void SetUp() override {
        root = dir.path().string();
        write_gray(root + "/candle/Data/Images/Normal/0001.JPG", 4, 3);
        write_gray(root + "/candle/Data/Images/Normal/0000.JPG", 4, 3);
        write_gray(root + "/candle/Data/Images/Normal/0002.JPG", 4, 3);
        write_gray(root + "/candle/Data/Images/Anomaly/000.JPG", 4, 3);
        // Class ids: value 3 marks a defect of class 3; any non-zero is anomalous.
        fs::create_directories(root + "/candle/Data/Masks/Anomaly");
        testing::write_png(
            root + "/candle/Data/Masks/Anomaly/000.png",
            PngSpec{
                4, 3, PNG_COLOR_TYPE_GRAY, 8, false, {0, 0, 3, 3, 0, 0, 0, 1, 0, 0, 0, 0}, {}, {}});
        write_gray(root + "/fryum/Data/Images/Normal/0000.JPG", 2, 2);
        write_gray(root + "/fryum/Data/Images/Normal/0001.JPG", 2, 2);
        csv = root + "/split.csv";
    }
    void write_csv(const std::string& text) { std::ofstream(csv) << text; }

    TempDir dir;
    std::string root, csv;
};

const char* kVisaCsv =
    "object,split,label,image,mask\n"
    "candle,train,normal,candle/Data/Images/Normal/0001.JPG,\n"
    "candle,train,normal,candle/Data/Images/Normal/0000.JPG,\n"
    "candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png\n"
    "candle,test,normal,candle/Data/Images/Normal/0002.JPG,\n"
    "fryum,train,normal,fryum/Data/Images/Normal/0000.JPG,\n"
    "fryum,test,normal,fryum/Data/Images/Normal/0001.JPG,\n";

TEST_F(VisaTest, ReadsTheSplitCsv) {
    write_csv(kVisaCsv);
    VisaDataset visa(root, csv);
    EXPECT_EQ(visa.classes(), (std::vector<std::string>{"candle", "fryum"}));
    const std::vector<std::string> train = visa.train_good("candle");
    ASSERT_EQ(train.size(), 2u);
    EXPECT_EQ(tail(train[0], root), "candle/Data/Images/Normal/0000.JPG");
    const std::vector<Sample> test = visa.test_samples("candle");
    ASSERT_EQ(test.size(), 2u);
    EXPECT_EQ(tail(test[0].image_path, root), "candle/Data/Images/Anomaly/000.JPG");
    EXPECT_EQ(test[0].label, 1);
    EXPECT_EQ(test[0].defect_type, "anomaly");
    EXPECT_EQ(test[1].label, 0);
    EXPECT_TRUE(test[1].mask_path.empty());
    const io::Mask mask = load_sample_mask(test[0]);
    EXPECT_EQ(mask.values, (std::vector<uint8_t>{0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0}));
}

TEST_F(VisaTest, ColumnsMayComeInAnyOrderAndBeQuoted) {
    write_csv(
        "image,label,split,object,mask,extra\n"
        "\"candle/Data/Images/Normal/0001.JPG\",normal,train,candle,,x\n"
        "candle/Data/Images/Normal/0002.JPG,normal,test,\"candle\",,y\n");
    VisaDataset visa(root, csv);
    EXPECT_EQ(visa.train_good("candle").size(), 1u);
    EXPECT_EQ(visa.test_samples("candle").size(), 1u);
}

TEST_F(VisaTest, BadRowsNameTheCsvLine) {
    write_csv("object,split,label,image,mask\ncandle,train,bad,candle/x.JPG,\n");
    expect_error<DatasetError>([&] { VisaDataset(root, csv); }, {csv + " line 2", "bad"});
    write_csv("object,split,label,image,mask\ncandle,test,anomaly,candle/x.JPG,\n");
    expect_error<DatasetError>([&] { VisaDataset(root, csv); }, {csv + " line 2", "no mask"});
    write_csv("object,split,image,mask\n");
    expect_error<DatasetError>([&] { VisaDataset(root, csv); }, {csv, "label"});
    write_csv("object,split,label,image,mask\ncandle,val,normal,candle/x.JPG,\n");
    expect_error<DatasetError>([&] { VisaDataset(root, csv); }, {"line 2", "val"});
    expect_error<IoError>([&] { VisaDataset(root, root + "/missing.csv"); }, {"missing.csv"});
}

TEST_F(VisaTest, MissingFilesAndClassesAreErrors) {
    write_csv(std::string(kVisaCsv) + "candle,test,normal,candle/Data/Images/Normal/0404.JPG,\n");
    VisaDataset visa(root, csv);
    expect_error<DatasetError>([&] { visa.test_samples("candle"); }, {"0404.JPG", csv + " line 8"});
    expect_error<DatasetError>([&] { visa.train_good("pcb1"); }, {"pcb1", csv});
}

}  // namespace
}  // namespace winclip::data
