#include "clip/tokenizer.h"

#include <locale.h>
#include <wctype.h>
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <utility>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>

#include "core/error.h"

#ifndef WINCLIP_CLIP_VOCAB
#error "WINCLIP_CLIP_VOCAB must name the BPE vocabulary (see framework/clip/CMakeLists.txt)"
#endif

namespace winclip::clip {
namespace {

// ---------------------------------------------------------------------------
// UTF-8

// The text for an error message: whole when short, else about 100 bytes
// around byte `at`, so a megabyte of input does not become a megabyte message.
std::string excerpt(const std::string& s, size_t at) {
    constexpr size_t kWidth = 100;
    if (s.size() <= kWidth) return "\"" + s + "\"";
    const size_t begin = at > kWidth / 2 ? std::min(at - kWidth / 2, s.size() - kWidth) : 0;
    return fmt::format("{} bytes, near \"{}\"", s.size(), s.substr(begin, kWidth));
}

std::u32string decode_utf8(const std::string& s) {
    std::u32string out;
    out.reserve(s.size());
    size_t i = 0;
    auto fail = [&]() {
        throw ConfigError(fmt::format("text is not valid UTF-8 (byte {} of {})", i, excerpt(s, i)));
    };
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        int extra = 0;
        char32_t cp = 0;
        if (c < 0x80) {
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            cp = c & 0x1F;
            extra = 1;
        } else if ((c & 0xF0) == 0xE0) {
            cp = c & 0x0F;
            extra = 2;
        } else if ((c & 0xF8) == 0xF0) {
            cp = c & 0x07;
            extra = 3;
        } else {
            fail();
        }
        if (extra > 0 && i + extra >= s.size()) fail();  // truncated sequence
        for (int k = 1; k <= extra; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) fail();
            cp = (cp << 6) | (cc & 0x3F);
        }
        // Overlong forms, surrogates and values past Unicode are invalid.
        static const char32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail();
        out.push_back(cp);
        i += extra + 1;
    }
    return out;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string encode_utf8(const std::u32string& s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t cp : s) append_utf8(out, cp);
    return out;
}

// ---------------------------------------------------------------------------
// HTML unescape, following Python's html.unescape.
//
// Named references: HTML5 defines 2,231 names; this table holds the ones text
// realistically contains: the 100 "legacy" names HTML5 also accepts without a
// semicolon (amp, lt, gt, quot and the Latin-1 letters and signs U+00A0-U+00FF),
// plus apos and the HTML 4 special, punctuation, arrow, maths and Greek names,
// which need the semicolon. Other names (e.g. &NotNestedLessLess;) stay as
// written, where Python would replace them (docs/known-differences.md).

struct NamedEntity {
    const char* name;
    char32_t code;
    bool legacy;  // also recognised without the trailing semicolon
};

// U+00A0 ... U+00FF in order.
constexpr const char* kLatin1Names[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",
    "copy",   "ordf",   "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn",
    "sup2",   "sup3",   "acute",  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",
    "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde",
    "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave",
    "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde",
    "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",
    "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",   "eth",
    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave",
    "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

constexpr NamedEntity kOtherNames[] = {
    {"amp", U'&', true},       {"AMP", U'&', true},       {"lt", U'<', true},
    {"LT", U'<', true},        {"gt", U'>', true},        {"GT", U'>', true},
    {"quot", U'"', true},      {"QUOT", U'"', true},      {"COPY", 0xA9, true},
    {"REG", 0xAE, true},       {"apos", U'\'', false},    {"OElig", 0x152, false},
    {"oelig", 0x153, false},   {"Scaron", 0x160, false},  {"scaron", 0x161, false},
    {"Yuml", 0x178, false},    {"fnof", 0x192, false},    {"circ", 0x2C6, false},
    {"tilde", 0x2DC, false},   {"ensp", 0x2002, false},   {"emsp", 0x2003, false},
    {"thinsp", 0x2009, false}, {"zwnj", 0x200C, false},   {"zwj", 0x200D, false},
    {"lrm", 0x200E, false},    {"rlm", 0x200F, false},    {"ndash", 0x2013, false},
    {"mdash", 0x2014, false},  {"lsquo", 0x2018, false},  {"rsquo", 0x2019, false},
    {"sbquo", 0x201A, false},  {"ldquo", 0x201C, false},  {"rdquo", 0x201D, false},
    {"bdquo", 0x201E, false},  {"dagger", 0x2020, false}, {"Dagger", 0x2021, false},
    {"bull", 0x2022, false},   {"hellip", 0x2026, false}, {"permil", 0x2030, false},
    {"prime", 0x2032, false},  {"Prime", 0x2033, false},  {"lsaquo", 0x2039, false},
    {"rsaquo", 0x203A, false}, {"oline", 0x203E, false},  {"frasl", 0x2044, false},
    {"euro", 0x20AC, false},   {"trade", 0x2122, false},  {"larr", 0x2190, false},
    {"uarr", 0x2191, false},   {"rarr", 0x2192, false},   {"darr", 0x2193, false},
    {"harr", 0x2194, false},   {"minus", 0x2212, false},  {"le", 0x2264, false},
    {"ge", 0x2265, false},     {"ne", 0x2260, false},     {"infin", 0x221E, false},
    {"asymp", 0x2248, false},  {"equiv", 0x2261, false},  {"sum", 0x2211, false},
    {"prod", 0x220F, false},   {"radic", 0x221A, false},  {"Alpha", 0x391, false},
    {"Beta", 0x392, false},    {"Gamma", 0x393, false},   {"Delta", 0x394, false},
    {"Epsilon", 0x395, false}, {"Zeta", 0x396, false},    {"Eta", 0x397, false},
    {"Theta", 0x398, false},   {"Iota", 0x399, false},    {"Kappa", 0x39A, false},
    {"Lambda", 0x39B, false},  {"Mu", 0x39C, false},      {"Nu", 0x39D, false},
    {"Xi", 0x39E, false},      {"Omicron", 0x39F, false}, {"Pi", 0x3A0, false},
    {"Rho", 0x3A1, false},     {"Sigma", 0x3A3, false},   {"Tau", 0x3A4, false},
    {"Upsilon", 0x3A5, false}, {"Phi", 0x3A6, false},     {"Chi", 0x3A7, false},
    {"Psi", 0x3A8, false},     {"Omega", 0x3A9, false},   {"alpha", 0x3B1, false},
    {"beta", 0x3B2, false},    {"gamma", 0x3B3, false},   {"delta", 0x3B4, false},
    {"epsilon", 0x3B5, false}, {"zeta", 0x3B6, false},    {"eta", 0x3B7, false},
    {"theta", 0x3B8, false},   {"iota", 0x3B9, false},    {"kappa", 0x3BA, false},
    {"lambda", 0x3BB, false},  {"mu", 0x3BC, false},      {"nu", 0x3BD, false},
    {"xi", 0x3BE, false},      {"omicron", 0x3BF, false}, {"pi", 0x3C0, false},
    {"rho", 0x3C1, false},     {"sigmaf", 0x3C2, false},  {"sigma", 0x3C3, false},
    {"tau", 0x3C4, false},     {"upsilon", 0x3C5, false}, {"phi", 0x3C6, false},
    {"chi", 0x3C7, false},     {"psi", 0x3C8, false},     {"omega", 0x3C9, false}};

// name -> (code point, legacy)
const std::unordered_map<std::u32string, std::pair<char32_t, bool>>& entity_table() {
    static const auto table = [] {
        std::unordered_map<std::u32string, std::pair<char32_t, bool>> t;
        auto add = [&t](const char* name, char32_t code, bool legacy) {
            std::u32string n;
            for (const char* p = name; *p; ++p) n.push_back(static_cast<char32_t>(*p));
            t[n] = {code, legacy};
        };
        for (int i = 0; i < 96; ++i) add(kLatin1Names[i], 0xA0 + i, true);
        for (const NamedEntity& e : kOtherNames) add(e.name, e.code, e.legacy);
        return t;
    }();
    return table;
}

// HTML5's replacements for numeric references to C1 controls (Windows-1252),
// NUL and CR, as Python's html._invalid_charrefs. 0 means "keep the code".
char32_t invalid_charref(char32_t n) {
    static const char32_t kC1[32] = {
        0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
    if (n == 0x00) return 0xFFFD;
    if (n == 0x0D) return U'\r';
    if (n >= 0x80 && n <= 0x9F) return kC1[n - 0x80];
    return 0;
}

// Python's html._invalid_codepoints: references to these expand to nothing.
bool invalid_codepoint(char32_t n) {
    return (n >= 0x1 && n <= 0x8) || n == 0xB || (n >= 0xE && n <= 0x1F) ||
           (n >= 0x7F && n <= 0x9F) || (n >= 0xFDD0 && n <= 0xFDEF) || (n & 0xFFFE) == 0xFFFE;
}

void append_numeric_reference(std::u32string& out, uint64_t n) {
    if (n <= 0x10FFFF) {
        if (char32_t r = invalid_charref(static_cast<char32_t>(n))) {
            out.push_back(r);
            return;
        }
    }
    if ((n >= 0xD800 && n <= 0xDFFF) || n > 0x10FFFF) {
        out.push_back(0xFFFD);
        return;
    }
    if (invalid_codepoint(static_cast<char32_t>(n))) return;
    out.push_back(static_cast<char32_t>(n));
}

bool is_hex_digit(char32_t c) {
    return (c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F');
}
int hex_value(char32_t c) {
    if (c <= U'9') return static_cast<int>(c - U'0');
    if (c <= U'F') return static_cast<int>(c - U'A' + 10);
    return static_cast<int>(c - U'a' + 10);
}

// One pass of Python's html.unescape: the pattern
//   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
// with its replacement rules.
std::u32string unescape_once(const std::u32string& s) {
    const auto& table = entity_table();
    std::u32string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        if (s[i] != U'&') {
            out.push_back(s[i++]);
            continue;
        }
        const size_t start = i + 1;
        // Numeric references.
        if (start < s.size() && s[start] == U'#') {
            size_t j = start + 1;
            const bool hex = j < s.size() && (s[j] == U'x' || s[j] == U'X');
            if (hex) ++j;
            const size_t digits_begin = j;
            uint64_t value = 0;
            while (j < s.size() && (hex ? is_hex_digit(s[j]) : (s[j] >= U'0' && s[j] <= U'9'))) {
                // Saturate: anything past 0x10FFFF is replaced the same way.
                value = std::min<uint64_t>(
                    value * (hex ? 16 : 10) + (hex ? hex_value(s[j]) : int(s[j] - U'0')),
                    uint64_t{0x7FFFFFFF});
                ++j;
            }
            if (j == digits_begin) {  // "&#" or "&#x" without digits: not a reference
                out.push_back(s[i++]);
                continue;
            }
            if (j < s.size() && s[j] == U';') ++j;
            append_numeric_reference(out, value);
            i = j;
            continue;
        }
        // Named references.
        size_t j = start;
        auto name_char = [](char32_t c) {
            return c != U'\t' && c != U'\n' && c != U'\f' && c != U' ' && c != U'<' && c != U'&' &&
                   c != U'#' && c != U';';
        };
        while (j < s.size() && j - start < 32 && name_char(s[j])) ++j;
        if (j == start) {
            out.push_back(s[i++]);
            continue;
        }
        const std::u32string name = s.substr(start, j - start);
        const bool semicolon = j < s.size() && s[j] == U';';
        const size_t end = semicolon ? j + 1 : j;
        auto it = table.find(name);
        if (it != table.end() && (semicolon || it->second.second)) {
            out.push_back(it->second.first);
            i = end;
            continue;
        }
        // The longest legacy name that is a proper prefix of what was written
        // ("&ampfoo" -> "&foo"), at least two characters long, as Python does.
        bool replaced = false;
        const size_t whole = name.size() + (semicolon ? 1 : 0);
        for (size_t x = whole - 1; x >= 2; --x) {
            if (x > name.size()) continue;
            auto p = table.find(name.substr(0, x));
            if (p != table.end() && p->second.second) {
                out.push_back(p->second.first);
                i = start + x;  // the rest of the name stays as text
                replaced = true;
                break;
            }
        }
        if (!replaced) out.push_back(s[i++]);
    }
    return out;
}

// ---------------------------------------------------------------------------
// Whitespace and case

// Python's str.isspace(): what re's \s and str.strip() treat as whitespace.
bool is_python_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

// Runs of whitespace become one space, and the ends are trimmed
// (OpenCLIP's whitespace_clean after basic_clean's strip).
std::u32string collapse_whitespace(const std::u32string& s) {
    std::u32string out;
    out.reserve(s.size());
    bool pending_space = false;
    for (char32_t c : s) {
        if (is_python_space(c)) {
            pending_space = !out.empty();
            continue;
        }
        if (pending_space) out.push_back(U' ');
        pending_space = false;
        out.push_back(c);
    }
    return out;
}

// Unicode lower case through glibc's C.UTF-8 locale (simple case mapping),
// plus the two context rules of Python's str.lower() that matter for text:
// U+0130 becomes "i" + U+0307, and a capital sigma ending a word becomes the
// final sigma. Python tests "cased" letters for the sigma rule; this tests
// letters (iswalpha), which differs only for rare uncased scripts.
std::u32string to_lower(const std::u32string& s) {
    static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    std::u32string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        const char32_t c = s[i];
        if (c < 0x80) {
            out.push_back(c >= U'A' && c <= U'Z' ? c + 32 : c);
        } else if (c == 0x130) {
            out.push_back(U'i');
            out.push_back(0x307);
        } else if (c == 0x3A3) {
            auto letter = [&](char32_t x) {
                return utf8 ? iswalpha_l(static_cast<wint_t>(x), utf8) != 0 : false;
            };
            const bool after_letter = i > 0 && letter(s[i - 1]);
            const bool before_letter = i + 1 < s.size() && letter(s[i + 1]);
            out.push_back(after_letter && !before_letter ? 0x3C2 : 0x3C3);
        } else if (utf8) {
            out.push_back(static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), utf8)));
        } else {
            // Without the C.UTF-8 locale only ASCII is folded; Debian always has it.
            out.push_back(c);
        }
    }
    return out;
}

// ---------------------------------------------------------------------------
// Byte-level BPE

// OpenCLIP's bytes_to_unicode(): printable Latin-1 bytes map to themselves,
// the others to code points from 256 up, so every byte is a visible character.
std::vector<char32_t> byte_to_unicode_order(std::vector<int>* bytes_in_order) {
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    std::vector<char32_t> cs(bs.begin(), bs.end());
    int n = 0;
    for (int b = 0; b < 256; ++b) {
        if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
            bs.push_back(b);
            cs.push_back(static_cast<char32_t>(256 + n++));
        }
    }
    *bytes_in_order = bs;
    return cs;
}

// OpenCLIP's pre-token pattern; text is already lower case, IGNORECASE kept
// for fidelity. Special tokens first, then contractions, letter runs, single
// digits, and runs of other non-space characters.
constexpr const char* kPreTokenPattern =
    "<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

constexpr int kMergeCount = 49152 - 256 - 2;  // merges OpenCLIP reads from the file

}  // namespace

std::string default_vocab_path() { return WINCLIP_CLIP_VOCAB; }

std::string html_unescape(const std::string& text) {
    return encode_utf8(unescape_once(decode_utf8(text)));
}

std::string clean_text(const std::string& text) {
    // basic_clean (without ftfy): unescape twice, strip; whitespace_clean; lower.
    std::u32string s = decode_utf8(text);
    s = unescape_once(unescape_once(s));
    s = collapse_whitespace(s);
    return encode_utf8(to_lower(s));
}

struct Tokenizer::Impl {
    std::string vocab_path;
    std::unordered_map<std::string, int64_t> encoder;  // BPE symbol (UTF-8) -> id
    std::unordered_map<std::string, int> merge_rank;   // "first second" -> rank
    std::string byte_encoder[256];                     // byte -> its symbol (UTF-8)
    pcre2_code* pattern = nullptr;

    mutable std::mutex cache_mutex;
    mutable std::unordered_map<std::string, std::vector<int64_t>> cache;  // pre-token -> ids

    ~Impl() {
        if (pattern) pcre2_code_free(pattern);
    }

    std::vector<int64_t> bpe(const std::string& token) const;
};

std::vector<int64_t> Tokenizer::Impl::bpe(const std::string& token) const {
    {
        std::lock_guard<std::mutex> lock(cache_mutex);
        auto it = cache.find(token);
        if (it != cache.end()) return it->second;
    }
    // The word as byte-level symbols, the last one marked as word end, in a
    // linked list so that a merge costs O(1) however long the word is.
    const size_t n = token.size();
    std::vector<std::string> symbol(n);
    std::vector<size_t> next(n), prev(n);
    std::vector<char> alive(n, 1);
    for (size_t i = 0; i < n; ++i) {
        symbol[i] = byte_encoder[static_cast<unsigned char>(token[i])];
        next[i] = i + 1;  // n: none
        prev[i] = i - 1;  // wraps to SIZE_MAX for the first: none
    }
    symbol[n - 1] += "</w>";
    auto rank_of = [&](size_t left) {
        if (next[left] >= n) return INT_MAX;
        auto it = merge_rank.find(symbol[left] + " " + symbol[next[left]]);
        return it == merge_rank.end() ? INT_MAX : it->second;
    };

    // OpenCLIP repeatedly merges the adjacent pair with the lowest rank, every
    // non-overlapping occurrence left to right, until no ranked pair is left.
    // Rescanning the word for each rank is quadratic in its length; here the
    // candidate pairs wait in a heap ordered by (rank, position), and each rank
    // is applied as one left-to-right pass over its occurrences, which gives
    // the same merges (a merge only forms pairs of other ranks).
    using Candidate = std::pair<int, size_t>;  // rank, left symbol's position
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    for (size_t i = 0; i + 1 < n; ++i) {
        const int r = rank_of(i);
        if (r != INT_MAX) heap.emplace(r, i);
    }
    std::vector<size_t> merged;
    while (!heap.empty()) {
        const int rank = heap.top().first;
        merged.clear();
        size_t last_left = SIZE_MAX;
        while (!heap.empty() && heap.top().first == rank) {
            const size_t left = heap.top().second;
            heap.pop();
            // Skip duplicates, symbols merged away, and pairs that changed.
            if (left == last_left || !alive[left] || rank_of(left) != rank) continue;
            last_left = left;
            const size_t right = next[left];
            symbol[left] += symbol[right];
            alive[right] = 0;
            next[left] = next[right];
            if (next[right] < n) prev[next[right]] = left;
            merged.push_back(left);
        }
        for (size_t m : merged) {  // the pairs the merged symbols now form
            if (prev[m] < n) {
                const int r = rank_of(prev[m]);
                if (r != INT_MAX) heap.emplace(r, prev[m]);
            }
            const int r = rank_of(m);
            if (r != INT_MAX) heap.emplace(r, m);
        }
    }
    std::vector<std::string> word;
    for (size_t i = 0; i < n; i = next[i]) word.push_back(std::move(symbol[i]));

    std::vector<int64_t> ids;
    ids.reserve(word.size());
    for (const std::string& symbol : word) {
        auto it = encoder.find(symbol);
        // Every single byte symbol and every merge result is in the vocabulary.
        WINCLIP_CHECK_MSG(it != encoder.end(), "BPE symbol missing from vocabulary: " + symbol);
        ids.push_back(it->second);
    }
    std::lock_guard<std::mutex> lock(cache_mutex);
    cache.emplace(token, ids);
    return ids;
}

Tokenizer::Tokenizer(const std::string& vocab_path) : impl_(std::make_unique<Impl>()) {
    impl_->vocab_path = vocab_path;

    // Read the gzip-compressed merge list.
    std::string text;
    {
        gzFile f = gzopen(vocab_path.c_str(), "rb");
        if (!f) throw IoError(fmt::format("cannot open BPE vocabulary {}", vocab_path));
        char buf[1 << 16];
        int n;
        while ((n = gzread(f, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
        int err = 0;
        const char* msg = gzerror(f, &err);
        const bool failed = n < 0 || (err != Z_OK && err != Z_STREAM_END);
        const std::string error_text = msg ? msg : "";
        gzclose(f);
        if (failed) {
            throw IoError(
                fmt::format("cannot decompress BPE vocabulary {}: {}", vocab_path, error_text));
        }
    }
    std::vector<std::pair<std::string, std::string>> merges;
    {
        // Line 0 is a version header; OpenCLIP uses the next kMergeCount lines.
        size_t pos = text.find('\n');
        int line = 1;
        while (pos != std::string::npos && static_cast<int>(merges.size()) < kMergeCount) {
            const size_t next = text.find('\n', pos + 1);
            std::string l = text.substr(
                pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
            const size_t space = l.find(' ');
            if (space == std::string::npos || space == 0 || space + 1 >= l.size()) {
                throw IoError(fmt::format("BPE vocabulary {}: line {} is not a merge \"a b\"",
                                          vocab_path, line + 1));
            }
            merges.emplace_back(l.substr(0, space), l.substr(space + 1));
            pos = next;
            ++line;
        }
        if (static_cast<int>(merges.size()) < kMergeCount) {
            throw IoError(fmt::format("BPE vocabulary {} has {} merges, expected {}", vocab_path,
                                      merges.size(), kMergeCount));
        }
    }

    // The vocabulary: byte symbols, byte symbols ending a word, merges, then
    // the two special tokens (ids 49406, 49407).
    std::vector<int> bytes_in_order;
    const std::vector<char32_t> symbols = byte_to_unicode_order(&bytes_in_order);
    std::vector<std::string> vocab;
    for (size_t i = 0; i < symbols.size(); ++i) {
        std::string sym;
        append_utf8(sym, symbols[i]);
        impl_->byte_encoder[bytes_in_order[i]] = sym;
        vocab.push_back(sym);
    }
    for (size_t i = 0; i < symbols.size(); ++i) vocab.push_back(vocab[i] + "</w>");
    for (size_t r = 0; r < merges.size(); ++r) {
        vocab.push_back(merges[r].first + merges[r].second);
        impl_->merge_rank.emplace(merges[r].first + " " + merges[r].second, static_cast<int>(r));
    }
    vocab.push_back("<start_of_text>");
    vocab.push_back("<end_of_text>");
    for (size_t i = 0; i < vocab.size(); ++i) impl_->encoder[vocab[i]] = static_cast<int64_t>(i);
    WINCLIP_CHECK(impl_->encoder.at("<start_of_text>") == kStartToken);
    WINCLIP_CHECK(impl_->encoder.at("<end_of_text>") == kEndToken);
    // Special tokens written in the text map to themselves, not through BPE.
    impl_->cache["<start_of_text>"] = {kStartToken};
    impl_->cache["<end_of_text>"] = {kEndToken};

    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    impl_->pattern =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPreTokenPattern), PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &error_code, &error_offset, nullptr);
    WINCLIP_CHECK_MSG(impl_->pattern != nullptr, "pre-token pattern does not compile");
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->encoder.size()); }

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
    const std::string clean = clean_text(text);
    std::vector<int64_t> ids;
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(impl_->pattern, nullptr);
    WINCLIP_CHECK(match != nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(clean.data());
    size_t offset = 0;
    while (offset < clean.size()) {
        // clean_text produced valid UTF-8, so PCRE2 need not check it again.
        const int rc = pcre2_match(impl_->pattern, subject, clean.size(), offset,
                                   PCRE2_NO_UTF_CHECK, match, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            pcre2_match_data_free(match);
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            throw ConfigError(fmt::format("cannot pre-tokenise {}: {}", excerpt(text, offset),
                                          reinterpret_cast<const char*>(message)));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
        WINCLIP_CHECK(ovector[1] > ovector[0]);  // every alternative matches at least one char
        const std::vector<int64_t> piece =
            impl_->bpe(clean.substr(ovector[0], ovector[1] - ovector[0]));
        ids.insert(ids.end(), piece.begin(), piece.end());
        offset = ovector[1];
    }
    pcre2_match_data_free(match);
    return ids;
}

Int64Array Tokenizer::tokenize(const std::vector<std::string>& texts, int context_length) const {
    if (context_length < 2) {
        throw ConfigError(fmt::format("context length must be >= 2, got {}", context_length));
    }
    Int64Array out({static_cast<int64_t>(texts.size()), context_length});
    for (size_t r = 0; r < texts.size(); ++r) {
        std::vector<int64_t> row = {kStartToken};
        const std::vector<int64_t> ids = encode(texts[r]);
        row.insert(row.end(), ids.begin(), ids.end());
        row.push_back(kEndToken);
        if (static_cast<int>(row.size()) > context_length) {
            row.resize(static_cast<size_t>(context_length));
            row.back() = kEndToken;  // truncation keeps the end token, as OpenCLIP does
        }
        std::copy(row.begin(), row.end(), out.values.begin() + r * context_length);
    }
    return out;
}

}  // namespace winclip::clip
