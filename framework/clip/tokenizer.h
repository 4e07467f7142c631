// OpenCLIP's byte-level BPE tokenizer (open_clip.tokenizer.SimpleTokenizer):
// clean-up, HTML unescape, lower case, pre-tokenising, BPE merges, start/end
// tokens, zero padding and truncation to the context length. Torch-free.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/array.h"

namespace winclip::clip {

// <repo>/third_party/clip/bpe_simple_vocab_16e6.txt.gz, fixed at build time.
std::string default_vocab_path();

class Tokenizer {
  public:
    static constexpr int64_t kStartToken = 49406;  // <start_of_text>
    static constexpr int64_t kEndToken = 49407;    // <end_of_text>

    // Reads the gzip-compressed merge list. Throws IoError if it cannot be read
    // or has fewer merges than the CLIP vocabulary needs.
    explicit Tokenizer(const std::string& vocab_path = default_vocab_path());
    ~Tokenizer();
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;

    // Token ids of one text, without start and end tokens. Throws ConfigError
    // when the text is not valid UTF-8.
    std::vector<int64_t> encode(const std::string& text) const;

    // [N, context_length] int64: start, ids, end, zeros. Texts longer than the
    // context are cut and their last token replaced by the end token, as
    // OpenCLIP does.
    Int64Array tokenize(const std::vector<std::string>& texts, int context_length = 77) const;

    // Number of token ids (49408 for the CLIP vocabulary).
    int64_t vocab_size() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The text clean-up OpenCLIP applies before pre-tokenising, without ftfy:
// HTML unescape twice, whitespace runs to one space, trim, lower case.
// Exposed for tests. Throws ConfigError on invalid UTF-8.
std::string clean_text(const std::string& text);

// Python's html.unescape on UTF-8 text: numeric references (with the HTML5
// replacements for invalid code points) and named references from the table
// in tokenizer.cpp (a subset of HTML5's, see the comment there).
std::string html_unescape(const std::string& text);

}  // namespace winclip::clip
