// jinja_value.h — runtime values of the chat-template Jinja interpreter, with Python semantics:
// none/bool/int/float/str/list/dict (insertion-ordered)/callable/namespace/undefined, Python
// str()/repr() printing, truthiness, equality and ordering, json.dumps-style serialisation and
// conversion from nlohmann::json. Failures throw jinja::Failure (the interpreter adds positions).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qforge::jinja {

// A template runtime error without position; the interpreter rethrows it as qforge::Error
// "chat template:LINE:COL: message".
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void fail(const std::string& msg);

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function, Namespace };

struct Value;
struct Dict;
using List = std::vector<Value>;

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Positional argument `idx`, else keyword `name`, else nullptr.
  const Value* get(size_t idx, std::string_view name) const;
};
using Function = std::function<Value(Args&)>;

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // string contents; for Undefined, the error to raise when it is misused
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // Dict and Namespace
  std::shared_ptr<Function> fn;

  static Value undefined(std::string why = "value is undefined");
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(List v = {});
  static Value make_dict();
  static Value make_namespace();
  static Value function(Function f);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_list() const { return kind == Kind::List; }
  bool is_mapping() const { return kind == Kind::Dict; }
  double as_double() const;  // numbers and bools
};

struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

bool truthy(const Value& v);
std::string type_name(const Value& v);     // Python type name: str, int, dict, ...
std::string to_str(const Value& v);        // Python str(); Undefined prints as ""
std::string repr(const Value& v);          // Python repr()
std::string format_float(double d);        // Python float repr: 1.0, 1e-05, 1e+16
bool equals(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);  // <0, 0, >0; fails on unorderable types
// Python json.dumps(v, ensure_ascii, indent, sort_keys) with its default separators.
std::string dump_json(const Value& v, const std::optional<std::string>& indent, bool sort_keys,
                      bool ensure_ascii);

Value from_json(const nlohmann::json& j);
Value from_json(const nlohmann::ordered_json& j);

// UTF-8 helpers: Python strings index by code point.
std::u32string to_u32(std::string_view s);
std::string to_utf8(std::u32string_view s);
int64_t length(const Value& v);  // len(); fails for values without a length

}  // namespace qforge::jinja
