#include "clip/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "io/hdf5.h"

namespace winclip::clip {
namespace {

const std::string kGolden = std::string(WINCLIP_TEST_DATA) + "/fixtures/tinyclip-vit-240-golden.h5";

const Tokenizer& tokenizer() {
    static const Tokenizer t;
    return t;
}

// Every row of the fixture (case, punctuation, contractions, digits, accents,
// HTML entities, empty and over-long text, CJK and emoji), exact.
TEST(Tokenizer, ReproducesGoldenIdsExactly) {
    io::H5File f(kGolden, io::H5File::Mode::kRead);
    const std::vector<std::string> texts = f.read_strings("tokenizer/text");
    const Int64Array expected = f.read_int64("tokenizer/ids");
    ASSERT_EQ(texts.size(), 10u);
    ASSERT_EQ(expected.shape, (std::vector<int64_t>{10, 77}));
    const Int64Array ids = tokenizer().tokenize(texts, 77);
    ASSERT_EQ(ids.shape, expected.shape);
    for (size_t r = 0; r < texts.size(); ++r) {
        const std::vector<int64_t> got(ids.values.begin() + r * 77,
                                       ids.values.begin() + (r + 1) * 77);
        const std::vector<int64_t> want(expected.values.begin() + r * 77,
                                        expected.values.begin() + (r + 1) * 77);
        EXPECT_EQ(got, want) << "row " << r << ": \"" << texts[r] << "\"";
    }
}

TEST(Tokenizer, VocabularyHasClipSize) { EXPECT_EQ(tokenizer().vocab_size(), 49408); }

TEST(Tokenizer, EmptyTextIsStartEndAndPadding) {
    const Int64Array ids = tokenizer().tokenize({""}, 5);
    EXPECT_EQ(ids.values, (std::vector<int64_t>{49406, 49407, 0, 0, 0}));
}

// Truncation keeps the end token in the last position.
TEST(Tokenizer, TruncationKeepsEndToken) {
    const Int64Array ids = tokenizer().tokenize({"a photo of a bottle."}, 4);
    EXPECT_EQ(ids.values, (std::vector<int64_t>{49406, 320, 1125, 49407}));
}

TEST(Tokenizer, SpecialTokensInTextMapToTheirIds) {
    EXPECT_EQ(tokenizer().encode("<end_of_text>"), (std::vector<int64_t>{49407}));
}

TEST(Tokenizer, InvalidUtf8IsAConfigError) {
    EXPECT_THROW(tokenizer().encode(std::string("bad \xff byte")), ConfigError);
    EXPECT_THROW(tokenizer().encode(std::string("cut \xe2\x82")), ConfigError);
}

TEST(Tokenizer, MissingVocabularyIsAnIoError) {
    EXPECT_THROW(Tokenizer("/nonexistent/vocab.txt.gz"), IoError);
}

// A megabyte of text in one pre-token (random letters, or punctuation) or in
// many is tokenised. The merge loop is a heap over a linked list, so this takes
// well under a second in a Release build; the former quadratic loop would have
// run for about an hour here (ctest's timeout stops a regression). Speed itself
// is not asserted: timing belongs in benchmarks.
TEST(Tokenizer, MegabyteTextsAreTokenised) {
    // Pseudo-random letters: one pre-token in which thousands of different
    // merges apply, each at only some places.
    std::string random_word(1 << 20, 'a');
    uint32_t state = 12345;
    for (char& c : random_word) {
        state = state * 1664525u + 1013904223u;
        c = static_cast<char>('a' + (state >> 24) % 26);
    }
    const std::vector<int64_t> letters = tokenizer().encode(random_word);
    const std::vector<int64_t> marks = tokenizer().encode(std::string(1 << 20, '!'));
    std::string mixed;
    while (mixed.size() < (1u << 20)) mixed += "Screw-thread 12 dents! ";
    const std::vector<int64_t> words = tokenizer().encode(mixed);
    // Merges shorten a run of one letter but never empty it.
    EXPECT_GT(letters.size(), 1000u);
    EXPECT_LT(letters.size(), 1u << 20);
    EXPECT_GT(marks.size(), 1000u);
    EXPECT_GT(words.size(), 1000u);
    // Each copy of the repeated phrase tokenises alike.
    const std::vector<int64_t> phrase = tokenizer().encode("Screw-thread 12 dents! ");
    ASSERT_GT(words.size(), 2 * phrase.size());
    EXPECT_TRUE(std::equal(phrase.begin(), phrase.end(), words.begin() + phrase.size()));
}

// A long word merges exactly as a short one does, piece by piece: the first
// tokens of "ab" * n match those of "ab" * 4 (BPE merges are local).
TEST(Tokenizer, LongWordMergesLikeShortOnes) {
    std::string long_word;
    for (int i = 0; i < 2000; ++i) long_word += "thread";
    std::string short_word;
    for (int i = 0; i < 40; ++i) short_word += "thread";
    const std::vector<int64_t> a = tokenizer().encode(long_word);
    const std::vector<int64_t> b = tokenizer().encode(short_word);
    ASSERT_GT(b.size(), 4u);
    EXPECT_TRUE(std::equal(b.begin(), b.end() - 2, a.begin()));
}

TEST(Tokenizer, NulBytesAreOrdinaryCharacters) {
    const std::vector<int64_t> with_nul = tokenizer().encode(std::string("a\0b", 3));
    EXPECT_EQ(with_nul.size(), 3u);
    EXPECT_NE(with_nul, tokenizer().encode("ab"));
}

TEST(Tokenizer, InvalidUtf8InLongTextGivesAShortMessage) {
    std::string text(1 << 20, 'a');
    text[500000] = '\xc0';
    try {
        tokenizer().encode(text);
        ADD_FAILURE() << "no ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_LT(std::string(e.what()).size(), 400u);
        EXPECT_NE(std::string(e.what()).find("500000"), std::string::npos) << e.what();
    }
}

// Python's html.unescape on the cases its rules distinguish.
TEST(HtmlUnescape, FollowsPythonRules) {
    EXPECT_EQ(html_unescape("&amp; &lt;b&gt; &quot;q&quot; &apos;"), "& <b> \"q\" '");
    EXPECT_EQ(html_unescape("&#65;&#x42;&#X43;&#0068"), "ABCD");
    EXPECT_EQ(html_unescape("caf&eacute; &copy 2024"), "caf\xc3\xa9 \xc2\xa9 2024");
    EXPECT_EQ(html_unescape("&ampfoo; &notit;"), "&foo; \xc2\xacit;");     // longest legacy prefix
    EXPECT_EQ(html_unescape("&hellip &hellip;"), "&hellip \xe2\x80\xa6");  // needs the semicolon
    EXPECT_EQ(html_unescape("&#128; &#0; &#xD800; &#1;x"),
              "\xe2\x82\xac \xef\xbf\xbd \xef\xbf\xbd x");
    EXPECT_EQ(html_unescape("&# &#x; & ;&unknown;"), "&# &#x; & ;&unknown;");
}

TEST(CleanText, UnescapesTwiceCollapsesSpaceAndLowers) {
    EXPECT_EQ(clean_text("  A&amp;amp;B \t\n C\xc2\xa0 "), "a&b c");
    EXPECT_EQ(clean_text("\xc3\x89T\xc3\x89 \xce\xa3\xce\x9f\xce\xa6\xce\x9f\xce\xa3"),
              "\xc3\xa9t\xc3\xa9 \xcf\x83\xce\xbf\xcf\x86\xce\xbf\xcf\x82");  // ÉTÉ ΣΟΦΟΣ
}

}  // namespace
}  // namespace winclip::clip
