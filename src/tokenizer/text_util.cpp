// tokenizer/text_util.cpp — UTF-8 helpers, Unicode properties via utf8proc, the GPT-2 byte map and
// the PCRE2 wrapper (see text_util.h).
#include "tokenizer/text_util.h"

#include <pcre2.h>
#include <utf8proc.h>

#include <array>

#include "qforge/status.h"

namespace qforge::tok {

size_t utf8_char_len(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

char32_t utf8_decode(std::string_view s, size_t i, size_t& len) {
  auto b = static_cast<unsigned char>(s[i]);
  len = utf8_char_len(b);
  if (i + len > s.size()) len = 1;
  switch (len) {
    case 1: return b;
    case 2: return ((b & 0x1F) << 6) | (s[i + 1] & 0x3F);
    case 3: return ((b & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
    default:
      return ((b & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
  }
}

void utf8_append(std::string& out, char32_t cp) {
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

namespace {
// Length of the valid UTF-8 character at s[i], 0 if the bytes there are not one. `*prefix` gets the
// number of bytes that form a valid prefix of some character (the "maximal subpart" rule).
size_t valid_char_at(std::string_view s, size_t i, size_t* prefix) {
  auto b0 = static_cast<unsigned char>(s[i]);
  *prefix = 0;
  if (b0 < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 2;
  else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  *prefix = 1;
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) return 0;
    auto b = static_cast<unsigned char>(s[i + k]);
    unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return 0;
    *prefix = k + 1;
  }
  return need;
}
}  // namespace

bool utf8_valid(std::string_view s) {
  size_t i = 0, p;
  while (i < s.size()) {
    size_t n = valid_char_at(s, i, &p);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string utf8_sanitize(std::string_view s) {
  if (utf8_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0, p;
  while (i < s.size()) {
    size_t n = valid_char_at(s, i, &p);
    if (n) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += p ? p : 1;
    }
  }
  return out;
}

size_t utf8_incomplete_tail(std::string_view s) {
  // Walk back at most 3 bytes to a lead byte; report it if the character it starts is cut short.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    auto b = static_cast<unsigned char>(s[s.size() - back]);
    if ((b & 0xC0) == 0x80) continue;
    size_t p;
    size_t n = valid_char_at(s, s.size() - back, &p);
    if (n == 0 && p == back) return back;  // a valid prefix that the string ends inside
    return 0;
  }
  return 0;
}

bool is_whitespace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool is_alphanumeric(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool is_mark_nonspacing(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_MN;
}

std::string to_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0, n; i < s.size(); i += n) {
    char32_t c = utf8_decode(s, i, n);
    if (c < 0x80) {
      out += static_cast<char>((c >= 'A' && c <= 'Z') ? c + 32 : c);
    } else if (c == 0x130) {
      out += "i\xCC\x87";  // İ lowercases to "i" + combining dot above (full mapping, as Rust)
    } else {
      utf8_append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

namespace {
struct ByteMap {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};
  ByteMap() {
    from_cp.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_cp[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

char32_t byte_to_unicode(uint8_t b) { return byte_map().to_cp[b]; }
int unicode_to_byte(char32_t c) { return c < 512 ? byte_map().from_cp[c] : -1; }

// ---- Regex ----

namespace {
struct JitStack {
  pcre2_match_context_8* mctx = nullptr;
  pcre2_jit_stack_8* stack = nullptr;
  JitStack() {
    mctx = pcre2_match_context_create_8(nullptr);
    stack = pcre2_jit_stack_create_8(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (mctx && stack) pcre2_jit_stack_assign_8(mctx, nullptr, stack);
  }
  ~JitStack() {
    if (stack) pcre2_jit_stack_free_8(stack);
    if (mctx) pcre2_match_context_free_8(mctx);
  }
};
pcre2_match_context_8* thread_match_context() {
  thread_local JitStack js;
  return js.mctx;
}
}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  auto* code = pcre2_compile_8(reinterpret_cast<PCRE2_SPTR8>(pattern.data()), pattern.size(),
                               PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR8 buf[256];
    pcre2_get_error_message_8(err, buf, sizeof buf);
    throw Error("tokenizer regex '" + pattern + "': " + reinterpret_cast<char*>(buf) + " at offset " +
                std::to_string(off));
  }
  pcre2_jit_compile_8(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
  code_ = code;
}

Regex::~Regex() { pcre2_code_free_8(static_cast<pcre2_code_8*>(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> out;
  auto* code = static_cast<pcre2_code_8*>(code_);
  pcre2_match_data_8* md = pcre2_match_data_create_from_pattern_8(code, nullptr);
  auto* subject = reinterpret_cast<PCRE2_SPTR8>(s.data());
  size_t pos = 0;
  while (pos <= s.size()) {
    int rc = pcre2_match_8(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, thread_match_context());
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free_8(md);
      PCRE2_UCHAR8 buf[256];
      pcre2_get_error_message_8(rc, buf, sizeof buf);
      throw Error("tokenizer regex '" + pattern_ + "': match failed: " + reinterpret_cast<char*>(buf));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer_8(md);
    size_t a = ov[0], b = ov[1];
    if (b > a) {
      out.emplace_back(a, b);
      pos = b;
    } else {  // empty match: step over one character
      if (a >= s.size()) break;
      pos = a + utf8_char_len(static_cast<unsigned char>(s[a]));
    }
  }
  pcre2_match_data_free_8(md);
  return out;
}

}  // namespace qforge::tok
