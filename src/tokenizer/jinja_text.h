// jinja_text.h — string and argument helpers shared by jinja_builtins.cpp (methods, operators)
// and jinja_filters.cpp (filters, tests): Python-compatible strip/split/replace/case mapping.
#pragma once
#include <string>

#include "tokenizer/jinja_value.h"

namespace qforge::jinja::text {

Value arg_or(const Args& a, size_t idx, std::string_view name, Value def);
bool is_space(char32_t c);
char32_t upper(char32_t c);
char32_t lower(char32_t c);
std::string map_case(const std::string& s, char32_t (*fn)(char32_t));
std::string capitalize(const std::string& s);
std::string jinja_title(const std::string& s);
std::string strip(const std::string& s, const Value* chars, bool left, bool right);
std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count);
std::string percent_format(const std::string& f, const List& vals);
int64_t to_int(const Value& v);
Value bound(std::function<Value(Args&)> fn);

}  // namespace qforge::jinja::text
