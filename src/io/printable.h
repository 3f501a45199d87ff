// io/printable.h — file bytes (tensor names, JSON values, metadata keys) quoted in one-line error
// messages: control and non-ASCII bytes escaped as \xNN, long values cut with "...".
#pragma once
#include <string>
#include <string_view>

namespace qforge::io {

inline std::string escape_for_message(std::string_view s, size_t max_len) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_len; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max_len) out += "...";
  return out;
}

}  // namespace qforge::io
