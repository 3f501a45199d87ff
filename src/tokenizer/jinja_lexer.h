// jinja_lexer.h — splits a chat template into text and tag tokens the way jinja2 does with
// trim_blocks=True and lstrip_blocks=True (transformers' apply_chat_template settings):
// whitespace control (-/+), comments, {% raw %}, line-ending normalisation and the dropped
// final newline (keep_trailing_newline=False).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace qforge::jinja {

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string value;  // text, name, decoded string literal, number or operator spelling
  int line = 1;
  int col = 1;
};

// Throws qforge::Error("chat template:LINE:COL: ...") on malformed input.
std::vector<Token> tokenize(std::string_view source);

}  // namespace qforge::jinja
