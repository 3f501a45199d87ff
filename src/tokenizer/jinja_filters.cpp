// jinja_filters.cpp — the jinja2 filters and tests used by Hugging Face chat templates, with
// transformers' own `tojson` (json.dumps with ensure_ascii=False, sort_keys=False, indent).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "tokenizer/jinja_interpreter.h"
#include "tokenizer/jinja_text.h"

namespace qforge::jinja {
using namespace text;
namespace {

// Attribute lookup for filters' `attribute=` (dotted paths, integer parts index lists).
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t k = 0;
  while (k <= path.size()) {
    size_t e = path.find('.', k);
    if (e == std::string::npos) e = path.size();
    std::string part = path.substr(k, e - k);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    if (cur.is_undefined()) return cur;
    cur = digits ? get_item(cur, Value::integer(std::stoll(part))) : get_item(cur, Value::string(part));
    k = e + 1;
  }
  return cur;
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(map_case(v.s, lower));
  return v;
}

// Shared by select/reject/selectattr/rejectattr: args after the test name go to the test.
Value select_impl(Interpreter& in, const Value& seq, Args& a, bool by_attr, bool keep) {
  size_t k = 0;
  std::string attr;
  if (by_attr) {
    if (a.pos.empty()) fail("selectattr/rejectattr need an attribute name");
    attr = to_str(a.pos[k++]);
  }
  std::string test;
  if (k < a.pos.size()) test = to_str(a.pos[k++]);
  Args targs;
  targs.pos.assign(a.pos.begin() + static_cast<long>(k), a.pos.end());
  List out;
  for (const Value& item : iterate(seq)) {
    Value probe = by_attr ? attr_path(item, attr) : item;
    bool ok;
    if (test.empty()) {
      ok = truthy(probe);
    } else {
      Args copy = targs;
      ok = in.apply_test(test, probe, copy);
    }
    if (ok == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

std::optional<std::string> indent_arg(const Value* v) {
  if (!v || v->is_none()) return std::nullopt;
  if (v->is_string()) return v->s;
  return std::string(static_cast<size_t>(std::max<int64_t>(0, to_int(*v))), ' ');
}

}  // namespace

Value filter_value(Interpreter& in, const std::string& name, const Value& v, Args& a) {
  auto str = [](std::string s) { return Value::string(std::move(s)); };
  if (name == "trim") return str(strip(to_str(v), a.get(0, "chars"), true, true));
  if (name == "length" || name == "count") return Value::integer(length(v));
  if (name == "upper") return str(map_case(to_str(v), upper));
  if (name == "lower") return str(map_case(to_str(v), lower));
  if (name == "capitalize") return str(capitalize(to_str(v)));
  if (name == "title") return str(jinja_title(to_str(v)));
  if (name == "string") return str(to_str(v));
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v;
    std::string out;
    for (char c : to_str(v)) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return str(out);
  }
  if (name == "default" || name == "d") {
    bool boolean = truthy(arg_or(a, 1, "boolean", Value::boolean(false)));
    if (v.is_undefined() || (boolean && !truthy(v))) return arg_or(a, 0, "default_value", Value::string(""));
    return v;
  }
  if (name == "tojson") {
    // transformers: json.dumps(x, ensure_ascii=False, indent=indent, separators=None, sort_keys=False)
    const Value* seps = a.get(2, "separators");
    if (seps && !seps->is_none()) fail("tojson: separators= is not supported");
    return str(dump_json(v, indent_arg(a.get(1, "indent")), truthy(arg_or(a, 3, "sort_keys", Value::boolean(false))),
                         truthy(arg_or(a, 0, "ensure_ascii", Value::boolean(false)))));
  }
  if (name == "join") {
    std::string sep = to_str(arg_or(a, 0, "d", Value::string("")));
    const Value* attr = a.get(1, "attribute");
    std::string out;
    List items = iterate(v);
    for (size_t k = 0; k < items.size(); ++k)
      out += (k ? sep : "") + to_str(attr ? attr_path(items[k], to_str(*attr)) : items[k]);
    return str(out);
  }
  if (name == "first" || name == "last") {
    List items = iterate(v);
    if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value::make_list(iterate(v));
  if (name == "items") {
    if (v.is_undefined()) return Value::make_list();
    if (!v.is_mapping()) fail(fmt::format("Can only get item pairs from a mapping, got {}", type_name(v)));
    List out;
    for (const auto& [k, x] : v.dict->items) out.push_back(Value::make_list({Value::string(k), x}));
    return Value::make_list(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is_mapping()) fail("dictsort expects a mapping");
    bool cs = truthy(arg_or(a, 0, "case_sensitive", Value::boolean(false)));
    bool by_value = to_str(arg_or(a, 1, "by", Value::string("key"))) == "value";
    bool rev = truthy(arg_or(a, 2, "reverse", Value::boolean(false)));
    List out;
    for (const auto& [k, x] : v.dict->items) out.push_back(Value::make_list({Value::string(k), x}));
    std::stable_sort(out.begin(), out.end(), [&](const Value& p, const Value& q) {
      int c = compare(sort_key((*p.list)[by_value], cs), sort_key((*q.list)[by_value], cs));
      return rev ? c > 0 : c < 0;
    });
    return Value::make_list(std::move(out));
  }
  if (name == "int") {
    Value def = arg_or(a, 0, "default", Value::integer(0));
    if (v.kind == Kind::Int || v.kind == Kind::Bool || v.kind == Kind::Float) return Value::integer(to_int(v));
    if (v.is_string()) {
      std::string s = strip(v.s, nullptr, true, true);
      try {
        size_t used = 0;
        int64_t x = std::stoll(s, &used, static_cast<int>(to_int(arg_or(a, 1, "base", Value::integer(10)))));
        if (used == s.size()) return Value::integer(x);
        double d = std::stod(s, &used);
        if (used == s.size()) return Value::integer(static_cast<int64_t>(d));
      } catch (const std::exception&) {
      }
    }
    return def;
  }
  if (name == "float") {
    Value def = arg_or(a, 0, "default", Value::number(0.0));
    if (v.is_number()) return Value::number(v.as_double());
    if (v.is_string()) {
      std::string s = strip(v.s, nullptr, true, true);
      try {
        size_t used = 0;
        double d = std::stod(s, &used);
        if (used == s.size()) return Value::number(d);
      } catch (const std::exception&) {
      }
    }
    return def;
  }
  if (name == "abs") {
    if (v.kind == Kind::Float) return Value::number(std::fabs(v.f));
    if (v.kind == Kind::Int || v.kind == Kind::Bool) return Value::integer(std::llabs(to_int(v)));
    fail(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
  }
  if (name == "round") {
    int64_t prec = to_int(arg_or(a, 0, "precision", Value::integer(0)));
    std::string method = to_str(arg_or(a, 1, "method", Value::string("common")));
    double x = v.as_double(), scale = std::pow(10.0, static_cast<double>(prec));
    double r = method == "ceil"    ? std::ceil(x * scale) / scale
               : method == "floor" ? std::floor(x * scale) / scale
                                   : std::nearbyint(x * scale) / scale;  // Python round(): half to even
    if (method != "common" && method != "ceil" && method != "floor") fail("method must be common, ceil or floor");
    return Value::number(r);
  }
  if (name == "replace") {
    if (a.pos.size() < 2) fail("replace filter needs old and new strings");
    return str(replace(to_str(v), to_str(a.pos[0]), to_str(a.pos[1]), to_int(arg_or(a, 2, "count", Value::integer(-1)))));
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::u32string u = to_u32(v.s);
      std::reverse(u.begin(), u.end());
      return str(to_utf8(u));
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (name == "sort" || name == "unique" || name == "max" || name == "min") {
    bool rev = name == "sort" && truthy(arg_or(a, 0, "reverse", Value::boolean(false)));
    size_t cs_idx = name == "sort" ? 1 : 0;
    bool cs = truthy(arg_or(a, cs_idx, "case_sensitive", Value::boolean(false)));
    const Value* attr = a.get(cs_idx + 1, "attribute");
    auto key = [&](const Value& x) { return sort_key(attr ? attr_path(x, to_str(*attr)) : x, cs); };
    List items = iterate(v);
    if (name == "unique") {
      List out, seen;
      for (const Value& x : items) {
        Value k = key(x);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
          seen.push_back(k);
          out.push_back(x);
        }
      }
      return Value::make_list(std::move(out));
    }
    if (name == "max" || name == "min") {
      if (items.empty()) return Value::undefined(fmt::format("No aggregated item, sequence was empty."));
      const Value* best = &items[0];
      for (const Value& x : items) {
        int c = compare(key(x), key(*best));
        if (name == "max" ? c > 0 : c < 0) best = &x;
      }
      return *best;
    }
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      int c = compare(key(x), key(y));
      return rev ? c > 0 : c < 0;
    });
    return Value::make_list(std::move(items));
  }
  if (name == "sum") {
    const Value* attr = a.get(0, "attribute");
    Value total = arg_or(a, 1, "start", Value::integer(0));
    for (const Value& x : iterate(v)) total = binary_op("+", total, attr ? attr_path(x, to_str(*attr)) : x);
    return total;
  }
  if (name == "map") {
    List out;
    if (const Value* attr = a.get(SIZE_MAX, "attribute")) {
      const Value* def = a.get(SIZE_MAX, "default");
      for (const Value& x : iterate(v)) {
        Value r = attr_path(x, to_str(*attr));
        out.push_back(r.is_undefined() && def ? *def : r);
      }
      return Value::make_list(std::move(out));
    }
    if (a.pos.empty()) fail("map requires a filter name or attribute=");
    std::string fname = to_str(a.pos[0]);
    Args rest;
    rest.pos.assign(a.pos.begin() + 1, a.pos.end());
    rest.kw = a.kw;
    for (const Value& x : iterate(v)) {
      Args copy = rest;
      out.push_back(in.apply_filter(fname, x, copy));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "select") return select_impl(in, v, a, false, true);
  if (name == "reject") return select_impl(in, v, a, false, false);
  if (name == "selectattr") return select_impl(in, v, a, true, true);
  if (name == "rejectattr") return select_impl(in, v, a, true, false);
  if (name == "indent") {
    std::string ind = indent_arg(a.get(0, "width")).value_or("    ");
    if (!a.get(0, "width")) ind = "    ";
    bool first = truthy(arg_or(a, 1, "first", Value::boolean(false)));
    bool blank = truthy(arg_or(a, 2, "blank", Value::boolean(false)));
    std::string s = to_str(v) + "\n";
    std::vector<std::string> lines;
    for (size_t k = 0; k < s.size();) {  // str.splitlines() on the \n-terminated text
      size_t e = s.find('\n', k);
      lines.push_back(s.substr(k, e - k));
      k = e + 1;
    }
    std::string rv;
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) rv += "\n" + ((blank || !lines[k].empty()) ? ind : "");
      rv += lines[k];
    }
    return str(first ? ind + rv : rv);
  }
  if (name == "batch") {
    int64_t n = to_int(arg_or(a, 0, "linecount", Value::integer(1)));
    if (n <= 0) fail("batch size must be positive");
    const Value* fill = a.get(1, "fill_with");
    List out, cur;
    for (const Value& x : iterate(v)) {
      cur.push_back(x);
      if (static_cast<int64_t>(cur.size()) == n) {
        out.push_back(Value::make_list(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (fill && !fill->is_none())
        while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
      out.push_back(Value::make_list(std::move(cur)));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "format") return str(percent_format(to_str(v), a.pos));
  fail(fmt::format("unknown filter '{}'", name));
}

bool test_value(Interpreter& in, const std::string& name, const Value& v, Args& a) {
  auto arg0 = [&]() -> const Value& {
    const Value* x = a.get(0, "other");
    if (!x) fail(fmt::format("test '{}' needs an argument", name));
    return *x;
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind == Kind::Int;
  if (name == "float") return v.kind == Kind::Float;
  if (name == "boolean") return v.kind == Kind::Bool;
  if (name == "true") return v.kind == Kind::Bool && v.b;
  if (name == "false") return v.kind == Kind::Bool && !v.b;
  if (name == "mapping") return v.is_mapping();
  if (name == "sequence") return v.is_list() || v.is_string() || v.is_mapping();
  if (name == "iterable") return v.is_list() || v.is_string() || v.is_mapping() || v.is_undefined();
  if (name == "callable") return v.kind == Kind::Function;
  if (name == "even" || name == "odd") {
    if (v.kind != Kind::Int && v.kind != Kind::Bool) fail(fmt::format("test '{}' needs an integer", name));
    int64_t x = to_int(v);
    return (((x % 2) + 2) % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") {
    int64_t d = to_int(arg0());
    if (d == 0) fail("integer division or modulo by zero");
    return to_int(v) % d == 0;
  }
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return equals(v, arg0());
  if (name == "ne" || name == "!=") return !equals(v, arg0());
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, arg0()) < 0;
  if (name == "le" || name == "<=") return compare(v, arg0()) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, arg0()) > 0;
  if (name == "ge" || name == ">=") return compare(v, arg0()) >= 0;
  if (name == "in") return contains(arg0(), v);
  if (name == "lower") return v.is_string() && map_case(v.s, lower) == v.s;
  if (name == "upper") return v.is_string() && map_case(v.s, upper) == v.s;
  (void)in;
  fail(fmt::format("unknown test '{}'", name));
}

}  // namespace qforge::jinja
