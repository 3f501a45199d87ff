// tokenizer/text_util.h — UTF-8 and Unicode helpers shared by the tokenizer pipeline: code point
// iteration, invalid-byte replacement, Unicode properties (via utf8proc) as Rust's char methods
// define them, the GPT-2 byte<->unicode map, and a PCRE2 regex wrapper (UTF + UCP, JIT when present).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qforge::tok {

// Decodes the code point at s[i] (s must be valid UTF-8); sets `len` to its byte length.
char32_t utf8_decode(std::string_view s, size_t i, size_t& len);
void utf8_append(std::string& out, char32_t cp);
size_t utf8_char_len(unsigned char lead);  // 1..4 from the lead byte (1 for invalid leads)
// True when `s` is valid UTF-8 (no overlongs, surrogates or values above U+10FFFF).
bool utf8_valid(std::string_view s);
// Returns `s` with every maximal invalid subsequence replaced by U+FFFD, exactly as Rust's
// String::from_utf8_lossy / Python's bytes.decode(errors="replace") do.
std::string utf8_sanitize(std::string_view s);
// Number of bytes at the end of `s` that form an incomplete (but so far valid) UTF-8 character.
size_t utf8_incomplete_tail(std::string_view s);

bool is_whitespace(char32_t c);    // Rust char::is_whitespace (White_Space property)
bool is_alphanumeric(char32_t c);  // Rust char::is_alphanumeric (L* or N*)
bool is_punctuation(char32_t c);   // ASCII punctuation or Unicode P*
bool is_mark_nonspacing(char32_t c);  // Mn
std::string to_lower(std::string_view s);  // full Unicode lowercase (simple mapping per char)

// GPT-2 byte-level alphabet: byte -> code point, and the reverse (-1 when a code point is not in it).
char32_t byte_to_unicode(uint8_t b);
int unicode_to_byte(char32_t c);

// Compiled PCRE2 pattern (UTF | UCP, JIT when available). Throws qforge::Error on a bad pattern.
class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Non-overlapping matches left to right as [start, end) byte ranges; empty matches are skipped.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace qforge::tok
