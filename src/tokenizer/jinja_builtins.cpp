// jinja_builtins.cpp — what chat templates call: attribute/item access and slicing, the
// operators, str/dict/list methods, the jinja2 filters and tests that Hugging Face templates use,
// and the globals range/namespace/dict/raise_exception/strftime_now.
#include <fmt/format.h>
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "tokenizer/jinja_interpreter.h"
#include "tokenizer/jinja_text.h"

namespace qforge::jinja {
namespace text {

Value arg_or(const Args& a, size_t idx, std::string_view name, Value def) {
  const Value* v = a.get(idx, name);
  return v ? *v : std::move(def);
}

bool is_space(char32_t c) { return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0 || c == 0x1680 ||
                                   (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
                                   c == 0x205F || c == 0x3000 || (c >= 0x1C && c <= 0x1F); }
char32_t upper(char32_t c) { return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }
char32_t lower(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }
bool is_cased_letter(char32_t c) { return upper(c) != c || lower(c) != c; }

std::string map_case(const std::string& s, char32_t (*fn)(char32_t)) {
  std::u32string u = to_u32(s);
  for (auto& c : u) c = fn(c);
  return to_utf8(u);
}
std::string capitalize(const std::string& s) {
  std::u32string u = to_u32(s);
  for (size_t k = 0; k < u.size(); ++k) u[k] = k ? lower(u[k]) : upper(u[k]);
  return to_utf8(u);
}
std::string py_title(const std::string& s) {  // str.title(): words are runs of cased letters
  std::u32string u = to_u32(s);
  bool prev_cased = false;
  for (auto& c : u) {
    bool cased = is_cased_letter(c);
    c = cased ? (prev_cased ? lower(c) : upper(c)) : c;
    prev_cased = cased;
  }
  return to_utf8(u);
}
std::string jinja_title(const std::string& s) {  // the `title` filter: words start after space/-/brackets
  std::u32string u = to_u32(s);
  bool start = true;
  for (auto& c : u) {
    bool sep = is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      start = true;
      continue;
    }
    c = start ? upper(c) : lower(c);
    start = false;
  }
  return to_utf8(u);
}

std::string strip(const std::string& s, const Value* chars, bool left, bool right) {
  std::u32string u = to_u32(s);
  std::u32string set;
  bool ws = !chars || chars->is_none();
  if (!ws) set = to_u32(to_str(*chars));
  auto strip_it = [&](char32_t c) { return ws ? is_space(c) : set.find(c) != std::u32string::npos; };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip_it(u[b])) ++b;
  if (right)
    while (e > b && strip_it(u[e - 1])) --e;
  return to_utf8(u.substr(b, e - b));
}

Value split(const std::string& s, const Value* sep_v, int64_t maxsplit) {
  List out;
  if (!sep_v || sep_v->is_none()) {  // runs of whitespace; leading/trailing ignored
    std::u32string u = to_u32(s);
    size_t k = 0;
    while (true) {
      while (k < u.size() && is_space(u[k])) ++k;
      if (k >= u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = u.size();
        while (e > k && is_space(u[e - 1])) --e;
        out.push_back(Value::string(to_utf8(u.substr(k, e - k))));
        break;
      }
      size_t e = k;
      while (e < u.size() && !is_space(u[e])) ++e;
      out.push_back(Value::string(to_utf8(u.substr(k, e - k))));
      k = e;
    }
    return Value::make_list(std::move(out));
  }
  std::string sep = to_str(*sep_v);
  if (sep.empty()) fail("empty separator");
  size_t k = 0;
  while (true) {
    size_t e = s.find(sep, k);
    if (e == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.push_back(Value::string(s.substr(k)));
      break;
    }
    out.push_back(Value::string(s.substr(k, e - k)));
    k = e + sep.size();
  }
  return Value::make_list(std::move(out));
}

std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  size_t k = 0;
  int64_t done = 0;
  if (from.empty()) {  // Python inserts `to` between every character
    std::u32string u = to_u32(s);
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < u.size()) out += to_utf8(u.substr(i, 1));
    }
    return out;
  }
  while (true) {
    size_t e = s.find(from, k);
    if (e == std::string::npos || (count >= 0 && done >= count)) break;
    out += s.substr(k, e - k) + to;
    k = e + from.size();
    ++done;
  }
  return out + s.substr(k);
}

int64_t count_sub(const std::string& s, const std::string& sub) {
  if (sub.empty()) return length(Value::string(s)) + 1;
  int64_t n = 0;
  for (size_t k = s.find(sub); k != std::string::npos; k = s.find(sub, k + sub.size())) ++n;
  return n;
}

int64_t to_int(const Value& v) {
  if (v.kind == Kind::Int) return v.i;
  if (v.kind == Kind::Bool) return v.b;
  if (v.kind == Kind::Float) return static_cast<int64_t>(v.f);
  fail(fmt::format("expected an integer, got {}", type_name(v)));
}

// Python str.format with {} / {0} / {name} fields (format specs are not supported).
std::string py_format(const std::string& fmt_s, const Args& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < fmt_s.size(); ++k) {
    char c = fmt_s[k];
    if (c == '{' && k + 1 < fmt_s.size() && fmt_s[k + 1] == '{') {
      out += '{';
      ++k;
    } else if (c == '}' && k + 1 < fmt_s.size() && fmt_s[k + 1] == '}') {
      out += '}';
      ++k;
    } else if (c == '{') {
      size_t e = fmt_s.find('}', k);
      if (e == std::string::npos) fail("Single '{' encountered in format string");
      std::string field = fmt_s.substr(k + 1, e - k - 1);
      if (field.find_first_of(":!") != std::string::npos) fail("format specs are not supported in str.format");
      const Value* v;
      if (field.empty()) v = a.get(auto_idx++, "\x01");
      else if (std::all_of(field.begin(), field.end(), ::isdigit)) v = a.get(std::stoul(field), "\x01");
      else v = a.get(SIZE_MAX, field);
      if (!v) fail(fmt::format("missing format argument '{}'", field));
      out += to_str(*v);
      k = e;
    } else {
      out += c;
    }
  }
  return out;
}

// printf-style `"%s, %d" | format(a, b)` and the `%` operator on strings.
std::string percent_format(const std::string& f, const List& vals) {
  std::string out;
  size_t idx = 0;
  for (size_t k = 0; k < f.size(); ++k) {
    if (f[k] != '%') {
      out += f[k];
      continue;
    }
    if (++k >= f.size()) fail("incomplete format");
    char c = f[k];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (idx >= vals.size()) fail("not enough arguments for format string");
    const Value& v = vals[idx++];
    if (c == 's') out += to_str(v);
    else if (c == 'r') out += repr(v);
    else if (c == 'd' || c == 'i') out += std::to_string(to_int(v));
    else if (c == 'f') out += fmt::format("{:.6f}", v.as_double());
    else fail(fmt::format("unsupported format character '{}'", c));
  }
  return out;
}

Value bound(std::function<Value(Args&)> fn) { return Value::function(std::move(fn)); }

Value string_method(const std::string& s, const std::string& name) {
  auto str = [](std::string x) { return Value::string(std::move(x)); };
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return bound([s, name, str](Args& a) {
      return str(strip(s, a.get(0, "chars"), name != "rstrip", name != "lstrip"));
    });
  if (name == "upper") return bound([s, str](Args&) { return str(map_case(s, upper)); });
  if (name == "lower") return bound([s, str](Args&) { return str(map_case(s, lower)); });
  if (name == "title") return bound([s, str](Args&) { return str(py_title(s)); });
  if (name == "capitalize") return bound([s, str](Args&) { return str(capitalize(s)); });
  if (name == "startswith" || name == "endswith")
    return bound([s, name](Args& a) {
      const Value* p = a.get(0, "prefix");
      if (!p) fail(fmt::format("{}() takes at least 1 argument", name));
      List cands = p->is_list() ? *p->list : List{*p};
      for (const Value& c : cands) {
        if (!c.is_string()) fail(fmt::format("{} first arg must be str or a tuple of str", name));
        bool hit = name == "startswith" ? s.compare(0, c.s.size(), c.s) == 0
                                        : s.size() >= c.s.size() && s.compare(s.size() - c.s.size(), c.s.size(), c.s) == 0;
        if (hit) return Value::boolean(true);
      }
      return Value::boolean(false);
    });
  if (name == "split" || name == "rsplit")
    return bound([s, name](Args& a) {
      int64_t maxsplit = to_int(arg_or(a, 1, "maxsplit", Value::integer(-1)));
      if (name == "rsplit" && maxsplit >= 0) fail("rsplit with maxsplit is not supported");
      return split(s, a.get(0, "sep"), maxsplit);
    });
  if (name == "splitlines")
    return bound([s](Args&) {
      List out;
      size_t k = 0;
      while (k < s.size()) {
        size_t e = s.find('\n', k);
        if (e == std::string::npos) e = s.size();
        out.push_back(Value::string(s.substr(k, e - k)));
        k = e + 1;
      }
      return Value::make_list(std::move(out));
    });
  if (name == "replace")
    return bound([s, str](Args& a) {
      if (a.pos.size() < 2) fail("replace() takes at least 2 arguments");
      return str(replace(s, to_str(a.pos[0]), to_str(a.pos[1]), to_int(arg_or(a, 2, "count", Value::integer(-1)))));
    });
  if (name == "find" || name == "rfind" || name == "index")
    return bound([s, name](Args& a) {
      std::string sub = to_str(arg_or(a, 0, "sub", Value::string("")));
      size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (p == std::string::npos) {
        if (name == "index") fail("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(length(Value::string(s.substr(0, p))));
    });
  if (name == "count")
    return bound([s](Args& a) { return Value::integer(count_sub(s, to_str(arg_or(a, 0, "sub", Value::string(""))))); });
  if (name == "join")
    return bound([s, str](Args& a) {
      std::string out;
      List items = iterate(arg_or(a, 0, "iterable", Value::make_list()));
      for (size_t k = 0; k < items.size(); ++k) out += (k ? s : "") + to_str(items[k]);
      return str(out);
    });
  if (name == "format") return bound([s, str](Args& a) { return str(py_format(s, a)); });
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum" || name == "islower" ||
      name == "isupper")
    return bound([s, name](Args&) {
      std::u32string u = to_u32(s);
      if (u.empty()) return Value::boolean(false);
      if (name == "islower" || name == "isupper") {
        bool any = false;
        for (char32_t c : u) {
          if (!is_cased_letter(c)) continue;
          any = true;
          if ((name == "islower") != (lower(c) == c)) return Value::boolean(false);
        }
        return Value::boolean(any);
      }
      for (char32_t c : u) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        bool alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        bool digit = cat == UTF8PROC_CATEGORY_ND;
        bool ok = name == "isdigit" ? digit : name == "isalpha" ? alpha : name == "isspace" ? is_space(c) : alpha || digit;
        if (!ok) return Value::boolean(false);
      }
      return Value::boolean(true);
    });
  return Value::undefined(fmt::format("'str object' has no attribute '{}'", name));
}

Value dict_method(const Value& d, const std::string& name) {
  if (name == "get")
    return bound([d](Args& a) {
      const Value* k = a.get(0, "key");
      if (!k) fail("get() takes at least 1 argument");
      const Value* v = d.dict->find(to_str(*k));
      return v ? *v : arg_or(a, 1, "default", Value::none());
    });
  if (name == "items")
    return bound([d](Args&) {
      List out;
      for (const auto& [k, v] : d.dict->items) out.push_back(Value::make_list({Value::string(k), v}));
      return Value::make_list(std::move(out));
    });
  if (name == "keys")
    return bound([d](Args&) {
      List out;
      for (const auto& kv : d.dict->items) out.push_back(Value::string(kv.first));
      return Value::make_list(std::move(out));
    });
  if (name == "values")
    return bound([d](Args&) {
      List out;
      for (const auto& kv : d.dict->items) out.push_back(kv.second);
      return Value::make_list(std::move(out));
    });
  return Value();
}

Value list_method(const Value& l, const std::string& name) {
  // append/extend mutate in place (jinja2's sandbox forbids it; chat templates that build lists
  // inside a namespace rely on it working in other ports).
  if (name == "append")
    return bound([l](Args& a) {
      if (a.pos.size() != 1) fail("append() takes exactly one argument");
      l.list->push_back(a.pos[0]);
      return Value::none();
    });
  if (name == "extend")
    return bound([l](Args& a) {
      for (const Value& v : iterate(arg_or(a, 0, "iterable", Value::make_list()))) l.list->push_back(v);
      return Value::none();
    });
  if (name == "index")
    return bound([l](Args& a) {
      Value x = arg_or(a, 0, "value", Value::none());
      for (size_t k = 0; k < l.list->size(); ++k)
        if (equals((*l.list)[k], x)) return Value::integer(static_cast<int64_t>(k));
      fail(fmt::format("{} is not in list", repr(x)));
    });
  if (name == "count")
    return bound([l](Args& a) {
      Value x = arg_or(a, 0, "value", Value::none());
      int64_t n = 0;
      for (const Value& v : *l.list) n += equals(v, x);
      return Value::integer(n);
    });
  return Value::undefined(fmt::format("'list object' has no attribute '{}'", name));
}

}  // namespace text
using namespace text;

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Kind::Undefined: fail(obj.s);
    case Kind::Namespace: {
      const Value* v = obj.dict->find(name);
      return v ? *v : Value::undefined(fmt::format("'Namespace object' has no attribute '{}'", name));
    }
    case Kind::Dict: {
      Value m = dict_method(obj, name);
      if (m.kind == Kind::Function) return m;
      const Value* v = obj.dict->find(name);
      return v ? *v : Value::undefined(fmt::format("'dict object' has no attribute '{}'", name));
    }
    case Kind::String: return string_method(obj.s, name);
    case Kind::List: return list_method(obj, name);
    default: return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(obj), name));
  }
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail(obj.s);
  if (obj.kind == Kind::Dict || obj.kind == Kind::Namespace) {
    const Value* v = obj.dict->find(to_str(key));
    if (v) return *v;
    if (key.is_string() && obj.kind == Kind::Dict) {
      Value m = dict_method(obj, key.s);
      if (m.kind == Kind::Function) return m;
    }
    return Value::undefined(fmt::format("'dict object' has no attribute '{}'", to_str(key)));
  }
  if ((obj.is_list() || obj.is_string()) && (key.kind == Kind::Int || key.kind == Kind::Bool)) {
    int64_t n = length(obj), k = to_int(key);
    if (k < 0) k += n;
    if (k < 0 || k >= n)
      return Value::undefined(fmt::format("'{} object' has no element {}", type_name(obj), to_int(key)));
    if (obj.is_list()) return (*obj.list)[k];
    return Value::string(to_utf8(to_u32(obj.s).substr(k, 1)));
  }
  if (key.is_string()) return get_attr(obj, key.s);
  return Value::undefined(fmt::format("'{} object' has no element {}", type_name(obj), repr(key)));
}

Value slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) fail(obj.s);
  if (!obj.is_list() && !obj.is_string()) fail(fmt::format("'{}' object is not subscriptable", type_name(obj)));
  int64_t n = length(obj);
  int64_t step = step_v.is_none() ? 1 : to_int(step_v);
  if (step == 0) fail("slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t def, int64_t lo, int64_t hi) {
    if (v.is_none()) return def;
    int64_t x = to_int(v);
    if (x < 0) x += n;
    return std::clamp(x, lo, hi);
  };
  int64_t start = step > 0 ? clamp(start_v, 0, 0, n) : clamp(start_v, n - 1, -1, n - 1);
  int64_t stop = step > 0 ? clamp(stop_v, n, 0, n) : clamp(stop_v, -1, -1, n - 1);
  std::vector<int64_t> idx;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) idx.push_back(k);
  if (obj.is_list()) {
    List out;
    for (int64_t k : idx) out.push_back((*obj.list)[k]);
    return Value::make_list(std::move(out));
  }
  std::u32string u = to_u32(obj.s), out;
  for (int64_t k : idx) out += u[k];
  return Value::string(to_utf8(out));
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return {};
    case Kind::List: return *v.list;
    case Kind::Dict:
    case Kind::Namespace: {
      List out;
      for (const auto& kv : v.dict->items) out.push_back(Value::string(kv.first));
      return out;
    }
    case Kind::String: {
      List out;
      for (char32_t c : to_u32(v.s)) out.push_back(Value::string(to_utf8(std::u32string(1, c))));
      return out;
    }
    default: fail(fmt::format("'{}' object is not iterable", type_name(v)));
  }
}

bool contains(const Value& c, const Value& item) {
  switch (c.kind) {
    case Kind::Undefined: return false;
    case Kind::String:
      if (!item.is_string()) fail(fmt::format("'in <string>' requires string as left operand, not {}", type_name(item)));
      return c.s.find(item.s) != std::string::npos;
    case Kind::List:
      for (const Value& v : *c.list)
        if (equals(v, item)) return true;
      return false;
    case Kind::Dict:
    case Kind::Namespace: return item.is_string() && c.dict->find(item.s) != nullptr;
    default: fail(fmt::format("argument of type '{}' is not iterable", type_name(c)));
  }
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::string(to_str(a) + to_str(b));
  if (a.is_undefined()) fail(a.s);
  if (b.is_undefined()) fail(b.s);
  auto unsupported = [&]() -> Value {
    fail(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b)));
  };
  bool nums = a.is_number() && b.is_number();
  bool ints = nums && a.kind != Kind::Float && b.kind != Kind::Float;
  if (op == "+") {
    if (ints) return Value::integer(to_int(a) + to_int(b));
    if (nums) return Value::number(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
    if (a.is_list() && b.is_list()) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(out));
    }
    return unsupported();
  }
  if (op == "-") {
    if (ints) return Value::integer(to_int(a) - to_int(b));
    if (nums) return Value::number(a.as_double() - b.as_double());
    return unsupported();
  }
  if (op == "*") {
    if (ints) return Value::integer(to_int(a) * to_int(b));
    if (nums) return Value::number(a.as_double() * b.as_double());
    const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
    const Value* times = seq == &a ? &b : &a;
    if (!seq || times->kind == Kind::Float || !times->is_number()) return unsupported();
    int64_t n = std::max<int64_t>(0, to_int(*times));
    if (seq->is_string()) {
      std::string out;
      for (int64_t k = 0; k < n; ++k) out += seq->s;
      return Value::string(out);
    }
    List out;
    for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq->list->begin(), seq->list->end());
    return Value::make_list(std::move(out));
  }
  if (op == "/") {
    if (!nums) return unsupported();
    if (b.as_double() == 0) fail("division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) return Value::string(percent_format(a.s, b.is_list() ? *b.list : List{b}));
    if (!nums) return unsupported();
    if (b.as_double() == 0) fail(op == "%" ? "modulo by zero" : "integer division or modulo by zero");
    if (ints) {
      int64_t x = to_int(a), y = to_int(b);
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward negative infinity
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    double x = a.as_double(), y = b.as_double();
    double q = std::floor(x / y);
    return Value::number(op == "//" ? q : x - q * y);
  }
  if (op == "**") {
    if (ints && to_int(b) >= 0) {
      int64_t r = 1, base = to_int(a);
      for (int64_t k = 0; k < to_int(b); ++k) r *= base;
      return Value::integer(r);
    }
    if (nums) return Value::number(std::pow(a.as_double(), b.as_double()));
    return unsupported();
  }
  fail(fmt::format("unknown operator '{}'", op));
}

void add_builtin_globals(Frame& f) {
  f.vars["range"] = bound([](Args& a) {
    if (a.pos.empty() || a.pos.size() > 3) fail("range expected 1 to 3 arguments");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = to_int(a.pos[0]);
    } else {
      start = to_int(a.pos[0]);
      stop = to_int(a.pos[1]);
      if (a.pos.size() == 3) step = to_int(a.pos[2]);
    }
    if (step == 0) fail("range() arg 3 must not be zero");
    List out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      out.push_back(Value::integer(k));
      if (out.size() > 100000) fail("range too big (sandbox limit is 100000 items)");
    }
    return Value::make_list(std::move(out));
  });
  f.vars["namespace"] = bound([](Args& a) {
    Value ns = Value::make_namespace();
    for (const Value& p : a.pos) {
      if (!p.is_mapping()) fail("namespace() positional argument must be a dict");
      for (const auto& [k, v] : p.dict->items) ns.dict->set(k, v);
    }
    for (const auto& [k, v] : a.kw) ns.dict->set(k, v);
    return ns;
  });
  f.vars["dict"] = bound([](Args& a) {
    Value d = Value::make_dict();
    for (const Value& p : a.pos)
      if (p.is_mapping())
        for (const auto& [k, v] : p.dict->items) d.dict->set(k, v);
    for (const auto& [k, v] : a.kw) d.dict->set(k, v);
    return d;
  });
  f.vars["raise_exception"] = bound([](Args& a) -> Value {
    fail(a.pos.empty() ? std::string("raise_exception called") : to_str(a.pos[0]));
  });
  f.vars["strftime_now"] = bound([](Args& a) {
    std::string fmt_s = to_str(arg_or(a, 0, "format", Value::string("%Y-%m-%d")));
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[512];
    size_t n = std::strftime(buf, sizeof buf, fmt_s.c_str(), &tm);
    return Value::string(std::string(buf, n));
  });
}

}  // namespace qforge::jinja
