// jinja_lexer.cpp — the chat-template lexer: text/tag splitting with jinja2's whitespace rules
// and the expression tokens (names, numbers, Python-escaped strings, operators) inside tags.
#include "tokenizer/jinja_lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "qforge/status.h"
#include "tokenizer/jinja_value.h"

namespace qforge::jinja {
namespace {

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool strip_next = false;  // previous tag ended with '-'
    while (pos < src_.size()) {
      size_t start = find_tag(pos);
      std::string text = src_.substr(pos, start - pos);
      if (strip_next) text.erase(0, std::min(text.size(), text.find_first_not_of(" \t\n\r\f\v")));
      strip_next = false;
      if (start >= src_.size()) {
        emit_text(text, pos);
        break;
      }
      char kind = src_[start + 1];  // '{', '%' or '#'
      char marker = start + 2 < src_.size() ? src_[start + 2] : '\0';
      if (marker == '-') {
        size_t e = text.find_last_not_of(" \t\n\r\f\v");
        text.erase(e == std::string::npos ? 0 : e + 1);
      } else if (marker != '+' && kind != '{') {
        lstrip(text, pos);
      }
      emit_text(text, pos);
      size_t inner = start + 2 + (marker == '-' || (marker == '+' && kind != '{') ? 1 : 0);
      if (kind == '#') {
        size_t end = src_.find("#}", inner);
        if (end == std::string::npos) error(start, "unterminated comment");
        strip_next = end > inner && src_[end - 1] == '-';
        pos = trim_block_end(end + 2, strip_next || (end > inner && src_[end - 1] == '+'));
        continue;
      }
      push(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", start);
      pos = lex_tag(inner, kind == '{', strip_next);
      if (kind == '%' && is_raw_start()) pos = lex_raw(pos);
    }
    push(Tok::Eof, "", src_.size());
    return std::move(out_);
  }

 private:
  std::string src_;
  std::vector<Token> out_;
  std::vector<size_t> line_starts_;

  [[noreturn]] void error(size_t at, const std::string& msg) {
    auto [line, col] = line_col(at);
    throw qforge::Error(fmt::format("chat template:{}:{}: {}", line, col, msg));
  }
  std::pair<int, int> line_col(size_t at) {
    if (line_starts_.empty()) {
      line_starts_.push_back(0);
      for (size_t k = 0; k < src_.size(); ++k)
        if (src_[k] == '\n') line_starts_.push_back(k + 1);
    }
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), at) - 1;
    return {static_cast<int>(it - line_starts_.begin()) + 1, static_cast<int>(at - *it) + 1};
  }
  void push(Tok t, std::string v, size_t at) {
    auto [line, col] = line_col(at);
    out_.push_back({t, std::move(v), line, col});
  }
  void emit_text(const std::string& text, size_t at) {
    if (!text.empty()) push(Tok::Text, text, at);
  }
  size_t find_tag(size_t pos) const {
    for (size_t k = pos; k + 1 < src_.size(); ++k)
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return src_.size();
  }
  // lstrip_blocks: drop spaces/tabs between the start of the line and a block/comment tag.
  void lstrip(std::string& text, size_t text_pos) const {
    size_t nl = text.rfind('\n');
    size_t line_start = nl == std::string::npos ? 0 : nl + 1;
    bool at_line_start = nl != std::string::npos || text_pos == 0 || src_[text_pos - 1] == '\n';
    if (!at_line_start) return;
    if (text.find_first_not_of(" \t", line_start) == std::string::npos) text.erase(line_start);
  }
  // trim_blocks: drop the first newline after a block or comment tag.
  size_t trim_block_end(size_t pos, bool no_trim) const {
    if (!no_trim && pos < src_.size() && src_[pos] == '\n') return pos + 1;
    return pos;
  }

  size_t lex_tag(size_t pos, bool is_var, bool& strip_next) {
    int depth = 0;
    while (true) {
      while (pos < src_.size() && std::isspace(static_cast<unsigned char>(src_[pos]))) ++pos;
      if (pos >= src_.size()) error(pos, is_var ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      std::string_view rest(src_.data() + pos, src_.size() - pos);
      const char* end = is_var ? "}}" : "%}";
      if (depth == 0) {
        for (char m : {'-', '+'}) {
          if (rest.size() >= 3 && rest[0] == m && rest.substr(1, 2) == end && (m == '-' || !is_var)) {
            push(is_var ? Tok::VarEnd : Tok::BlockEnd, "", pos);
            strip_next = m == '-';
            return pos + 3;  // '-' strips what follows; '+%}' disables trim_blocks
          }
        }
        if (rest.substr(0, 2) == end) {
          push(is_var ? Tok::VarEnd : Tok::BlockEnd, "", pos);
          return is_var ? pos + 2 : trim_block_end(pos + 2, false);
        }
      }
      char c = src_[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        push(Tok::Name, src_.substr(pos, e - pos), pos);
        pos = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        pos = lex_number(pos);
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                    "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
        bool found = false;
        for (const char* op : ops) {
          if (rest.substr(0, std::char_traits<char>::length(op)) == op) {
            std::string o(op);
            if (o == "(" || o == "[" || o == "{") ++depth;
            if (o == ")" || o == "]" || o == "}") --depth;
            push(Tok::Op, o, pos);
            pos += o.size();
            found = true;
            break;
          }
        }
        if (!found) error(pos, fmt::format("unexpected character '{}'", c));
      }
    }
  }

  size_t lex_number(size_t pos) {
    size_t e = pos;
    auto digits = [&] {
      while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      is_float = true;
      ++e;
      digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t k = e + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        is_float = true;
        e = k;
        digits();
      }
    }
    std::string num;
    for (size_t k = pos; k < e; ++k)
      if (src_[k] != '_') num += src_[k];
    push(is_float ? Tok::Float : Tok::Int, num, pos);
    return e;
  }

  size_t lex_string(size_t pos) {
    char q = src_[pos];
    std::string val;
    size_t k = pos + 1;
    while (true) {
      if (k >= src_.size()) error(pos, "unterminated string literal");
      char c = src_[k];
      if (c == q) break;
      if (c != '\\') {
        val += c;
        ++k;
        continue;
      }
      if (k + 1 >= src_.size()) error(pos, "unterminated string literal");
      char e = src_[k + 1];
      k += 2;
      auto hex = [&](int n) {
        if (k + n > src_.size()) error(pos, "truncated escape in string literal");
        char32_t cp = static_cast<char32_t>(std::stoul(src_.substr(k, n), nullptr, 16));
        k += n;
        val += to_utf8(std::u32string(1, cp));
      };
      switch (e) {  // Python unicode-escape, as jinja2 decodes literals
        case 'n': val += '\n'; break;
        case 't': val += '\t'; break;
        case 'r': val += '\r'; break;
        case '0': val += '\0'; break;
        case 'a': val += '\a'; break;
        case 'b': val += '\b'; break;
        case 'f': val += '\f'; break;
        case 'v': val += '\v'; break;
        case '\\': val += '\\'; break;
        case '\'': val += '\''; break;
        case '"': val += '"'; break;
        case '\n': break;
        case 'x': hex(2); break;
        case 'u': hex(4); break;
        case 'U': hex(8); break;
        default: val += '\\'; val += e;
      }
    }
    push(Tok::String, val, pos);
    return k + 1;
  }

  bool is_raw_start() const {
    size_t n = out_.size();
    return n >= 3 && out_[n - 3].type == Tok::BlockBegin && out_[n - 2].type == Tok::Name &&
           out_[n - 2].value == "raw" && out_[n - 1].type == Tok::BlockEnd;
  }
  // Everything up to {% endraw %} is text.
  size_t lex_raw(size_t pos) {
    out_.resize(out_.size() - 3);
    size_t k = pos;
    while (true) {
      k = src_.find("{%", k);
      if (k == std::string::npos) error(pos, "missing {% endraw %}");
      size_t j = k + 2;
      bool strip_before = j < src_.size() && src_[j] == '-';
      if (strip_before || (j < src_.size() && src_[j] == '+')) ++j;
      while (j < src_.size() && std::isspace(static_cast<unsigned char>(src_[j]))) ++j;
      if (src_.compare(j, 6, "endraw") != 0) {
        k += 2;
        continue;
      }
      j += 6;
      while (j < src_.size() && std::isspace(static_cast<unsigned char>(src_[j]))) ++j;
      bool strip_after = j < src_.size() && src_[j] == '-';
      if (strip_after || (j < src_.size() && src_[j] == '+')) ++j;
      if (src_.compare(j, 2, "%}") != 0) error(j, "expected '%}' after endraw");
      std::string text = src_.substr(pos, k - pos);
      if (strip_before) {
        size_t e = text.find_last_not_of(" \t\n\r\f\v");
        text.erase(e == std::string::npos ? 0 : e + 1);
      }
      emit_text(text, pos);
      size_t after = j + 2;
      if (strip_after) {
        while (after < src_.size() && std::isspace(static_cast<unsigned char>(src_[after]))) ++after;
        return after;
      }
      return trim_block_end(after, false);
    }
  }
};

std::string normalize_newlines(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '\r') {
      out += '\n';
      if (k + 1 < s.size() && s[k + 1] == '\n') ++k;
    } else {
      out += s[k];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(normalize_newlines(source)).run(); }

}  // namespace qforge::jinja
