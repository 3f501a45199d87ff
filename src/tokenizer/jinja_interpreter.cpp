// jinja_interpreter.cpp — statement execution and expression evaluation for chat templates;
// runtime failures are reported as "chat template:LINE:COL: message" (qforge::Error).
#include "tokenizer/jinja_interpreter.h"

#include <fmt/format.h>

#include "qforge/status.h"

namespace qforge::jinja {

const Value* Frame::find(const std::string& name) const {
  for (const Frame* f = this; f; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return &it->second;
  }
  return nullptr;
}

std::string Interpreter::render(const Body& body) {
  out_.clear();
  auto top = std::make_shared<Frame>();
  top->parent = globals_;
  exec_body(body, top);
  return std::move(out_);
}

Interpreter::Flow Interpreter::exec_body(const Body& body, const std::shared_ptr<Frame>& f) {
  for (const auto& s : body) {
    Flow fl = exec(*s, f);
    if (fl != Flow::Normal) return fl;
  }
  return Flow::Normal;
}

std::string Interpreter::capture(const Body& body, const std::shared_ptr<Frame>& f) {
  std::string saved;
  saved.swap(out_);
  exec_body(body, f);
  saved.swap(out_);
  return saved;
}

static void assign(const Stmt& s, const std::shared_ptr<Frame>& f, const Value& v) {
  if (s.targets.size() == 1) {
    const std::string& t = s.targets[0];
    size_t dot = t.find('.');
    if (dot == std::string::npos) {
      f->vars[t] = v;
      return;
    }
    std::string obj = t.substr(0, dot);
    const Value* ns = f->find(obj);
    if (!ns || ns->kind != Kind::Namespace)
      throw qforge::Error(fmt::format("chat template:{}:{}: cannot assign attribute on non-namespace object '{}'",
                                      s.line, s.col, obj));
    ns->dict->set(t.substr(dot + 1), v);
    return;
  }
  List items = iterate(v);
  if (items.size() != s.targets.size())
    throw qforge::Error(fmt::format("chat template:{}:{}: cannot unpack {} values into {} names", s.line, s.col,
                                    items.size(), s.targets.size()));
  for (size_t k = 0; k < items.size(); ++k) f->vars[s.targets[k]] = items[k];
}

Interpreter::Flow Interpreter::exec(const Stmt& s, const std::shared_ptr<Frame>& f) {
  switch (s.kind) {
    case StmtKind::Text: out_ += s.text; return Flow::Normal;
    case StmtKind::Print: out_ += to_str(eval(*s.expr, f)); return Flow::Normal;
    case StmtKind::If:
      for (const auto& [cond, body] : s.branches)
        if (truthy(eval(*cond, f))) return exec_body(body, f);
      return exec_body(s.else_body, f);
    case StmtKind::For: return exec_for(s, f);
    case StmtKind::Set: assign(s, f, eval(*s.expr, f)); return Flow::Normal;
    case StmtKind::SetBlock: {
      Value v = Value::string(capture(s.body, f));
      if (s.expr) {
        // Filter chain with a null input: apply each filter to the captured text.
        std::vector<const Expr*> chain;
        for (const Expr* e = s.expr.get(); e; e = e->kids[0].get()) chain.insert(chain.begin(), e);
        for (const Expr* e : chain) {
          Args a = eval_args(*e, 1, f);
          try {
            v = apply_filter(e->name, v, a);
          } catch (const Failure& x) {
            throw qforge::Error(fmt::format("chat template:{}:{}: {}", e->line, e->col, x.what()));
          }
        }
      }
      assign(s, f, v);
      return Flow::Normal;
    }
    case StmtKind::Macro: f->vars[s.text] = make_macro(s, f); return Flow::Normal;
    case StmtKind::CallBlock: {
      // `caller()` renders the block body in the calling scope.
      const Stmt* sp = &s;
      std::shared_ptr<Frame> fp = f;
      Value caller = Value::function([this, sp, fp](Args& a) {
        auto inner = std::make_shared<Frame>();
        inner->parent = fp;
        for (size_t k = 0; k < sp->params.size(); ++k) {
          const Value* v = a.get(k, sp->params[k].first);
          inner->vars[sp->params[k].first] =
              v ? *v : sp->params[k].second ? eval(*sp->params[k].second, fp) : Value::undefined();
        }
        return Value::string(capture(sp->body, inner));
      });
      const Expr& call_expr = *s.expr;
      Value callee = eval(*call_expr.kids[0], f);
      Args a = eval_args(call_expr, 1, f);
      a.kw.emplace_back("caller", caller);
      try {
        out_ += to_str(call(callee, a));
      } catch (const Failure& x) {
        throw qforge::Error(fmt::format("chat template:{}:{}: {}", s.line, s.col, x.what()));
      }
      return Flow::Normal;
    }
    case StmtKind::FilterBlock: {
      Value v = Value::string(capture(s.body, f));
      std::vector<const Expr*> chain;
      for (const Expr* e = s.expr.get(); e; e = e->kids[0].get()) chain.insert(chain.begin(), e);
      for (const Expr* e : chain) {
        Args a = eval_args(*e, 1, f);
        try {
          v = apply_filter(e->name, v, a);
        } catch (const Failure& x) {
          throw qforge::Error(fmt::format("chat template:{}:{}: {}", e->line, e->col, x.what()));
        }
      }
      out_ += to_str(v);
      return Flow::Normal;
    }
    case StmtKind::Scope: return exec_body(s.body, f);
    case StmtKind::Break: return Flow::Break;
    case StmtKind::Continue: return Flow::Continue;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, const std::shared_ptr<Frame>& f) {
  Value seq = eval(*s.expr, f);
  List items;
  try {
    items = iterate(seq);
  } catch (const Failure& x) {
    throw qforge::Error(fmt::format("chat template:{}:{}: {}", s.expr->line, s.expr->col, x.what()));
  }
  auto bind = [&](const std::shared_ptr<Frame>& fr, const Value& item) {
    if (s.targets.size() == 1) {
      fr->vars[s.targets[0]] = item;
      return;
    }
    List parts = iterate(item);
    if (parts.size() != s.targets.size())
      throw qforge::Error(fmt::format("chat template:{}:{}: cannot unpack {} values into {} loop variables", s.line,
                                      s.col, parts.size(), s.targets.size()));
    for (size_t k = 0; k < parts.size(); ++k) fr->vars[s.targets[k]] = parts[k];
  };
  if (s.cond) {  // `for x in y if cond`: loop.length counts the filtered items
    List kept;
    for (const Value& it : items) {
      auto probe = std::make_shared<Frame>();
      probe->parent = f;
      bind(probe, it);
      if (truthy(eval(*s.cond, probe))) kept.push_back(it);
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec_body(s.else_body, f);
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t k = 0; k < n; ++k) {
    auto fr = std::make_shared<Frame>();  // fresh scope per iteration, as jinja2
    fr->parent = f;
    Value loop = Value::make_dict();
    Dict& d = *loop.dict;
    d.set("index", Value::integer(k + 1));
    d.set("index0", Value::integer(k));
    d.set("revindex", Value::integer(n - k));
    d.set("revindex0", Value::integer(n - k - 1));
    d.set("first", Value::boolean(k == 0));
    d.set("last", Value::boolean(k == n - 1));
    d.set("length", Value::integer(n));
    d.set("depth", Value::integer(1));
    d.set("depth0", Value::integer(0));
    d.set("previtem", k > 0 ? items[k - 1] : Value::undefined("'loop.previtem' is undefined"));
    d.set("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("'loop.nextitem' is undefined"));
    d.set("cycle", Value::function([k](Args& a) -> Value {
      if (a.pos.empty()) fail("no items for cycling given");
      return a.pos[k % a.pos.size()];
    }));
    fr->vars["loop"] = loop;
    bind(fr, items[k]);
    Flow fl = exec_body(s.body, fr);
    if (fl == Flow::Break) break;
  }
  return Flow::Normal;
}

Value Interpreter::make_macro(const Stmt& s, const std::shared_ptr<Frame>& f) {
  const Stmt* sp = &s;
  std::shared_ptr<Frame> def_frame = f;
  return Value::function([this, sp, def_frame](Args& a) -> Value {
    auto fr = std::make_shared<Frame>();
    fr->parent = def_frame;
    size_t np = sp->params.size();
    for (size_t k = 0; k < np; ++k) {
      const auto& [name, def] = sp->params[k];
      const Value* v = a.get(k, name);
      fr->vars[name] = v ? *v : def ? eval(*def, fr) : Value::undefined(fmt::format("'{}' is undefined", name));
    }
    List varargs;
    for (size_t k = np; k < a.pos.size(); ++k) varargs.push_back(a.pos[k]);
    fr->vars["varargs"] = Value::make_list(std::move(varargs));
    Value kwargs = Value::make_dict();
    for (const auto& [k, v] : a.kw) {
      bool is_param = false;
      for (const auto& p : sp->params) is_param |= p.first == k;
      if (k == "caller") fr->vars["caller"] = v;
      else if (!is_param) kwargs.dict->set(k, v);
    }
    fr->vars["kwargs"] = kwargs;
    return Value::string(capture(sp->body, fr));
  });
}

Args Interpreter::eval_args(const Expr& e, size_t first, const std::shared_ptr<Frame>& f) {
  Args a;
  for (size_t k = first; k < e.kids.size(); ++k) a.pos.push_back(eval(*e.kids[k], f));
  for (const auto& [name, x] : e.kwargs) a.kw.emplace_back(name, eval(*x, f));
  return a;
}

Value Interpreter::call(const Value& callee, Args& args) {
  if (callee.kind != Kind::Function) {
    if (callee.is_undefined()) fail(callee.s);
    fail(fmt::format("'{}' object is not callable", type_name(callee)));
  }
  return (*callee.fn)(args);
}

Value Interpreter::apply_filter(const std::string& name, const Value& input, Args& args) {
  return filter_value(*this, name, input, args);
}
bool Interpreter::apply_test(const std::string& name, const Value& input, Args& args) {
  return test_value(*this, name, input, args);
}

Value Interpreter::eval(const Expr& e, const std::shared_ptr<Frame>& f) {
  try {
    return eval_impl(e, f);
  } catch (const Failure& x) {
    throw qforge::Error(fmt::format("chat template:{}:{}: {}", e.line, e.col, x.what()));
  }
}

Value Interpreter::eval_impl(const Expr& e, const std::shared_ptr<Frame>& f) {
  switch (e.kind) {
    case ExprKind::Literal: return e.literal;
    case ExprKind::Name: {
      const Value* v = f->find(e.name);
      return v ? *v : Value::undefined(fmt::format("'{}' is undefined", e.name));
    }
    case ExprKind::ListLit:
    case ExprKind::TupleLit: {
      List l;
      for (const auto& k : e.kids) l.push_back(eval(*k, f));
      return Value::make_list(std::move(l));
    }
    case ExprKind::DictLit: {
      Value d = Value::make_dict();
      for (size_t k = 0; k + 1 < e.kids.size(); k += 2) d.dict->set(to_str(eval(*e.kids[k], f)), eval(*e.kids[k + 1], f));
      return d;
    }
    case ExprKind::GetAttr: return get_attr(eval(*e.kids[0], f), e.name);
    case ExprKind::GetItem: return get_item(eval(*e.kids[0], f), eval(*e.kids[1], f));
    case ExprKind::Slice: {
      auto opt = [&](size_t k) { return e.kids[k] ? eval(*e.kids[k], f) : Value::none(); };
      return slice(eval(*e.kids[0], f), opt(1), opt(2), opt(3));
    }
    case ExprKind::Call: {
      Value callee = eval(*e.kids[0], f);
      Args a = eval_args(e, 1, f);
      return call(callee, a);
    }
    case ExprKind::Filter: {
      Value in = eval(*e.kids[0], f);
      Args a = eval_args(e, 1, f);
      return apply_filter(e.name, in, a);
    }
    case ExprKind::Test: {
      Value in = eval(*e.kids[0], f);
      Args a = eval_args(e, 1, f);
      return Value::boolean(apply_test(e.name, in, a) != e.negated);
    }
    case ExprKind::Unary: {
      Value v = eval(*e.kids[0], f);
      if (e.name == "not") return Value::boolean(!truthy(v));
      if (v.is_undefined()) fail(v.s);
      if (v.kind == Kind::Float) return Value::number(e.name == "-" ? -v.f : v.f);
      if (v.kind == Kind::Int || v.kind == Kind::Bool) {
        int64_t x = v.kind == Kind::Bool ? v.b : v.i;
        return Value::integer(e.name == "-" ? -x : x);
      }
      fail(fmt::format("bad operand type for unary {}: '{}'", e.name, type_name(v)));
    }
    case ExprKind::Binary: {
      if (e.name == "and") {
        Value l = eval(*e.kids[0], f);
        return truthy(l) ? eval(*e.kids[1], f) : l;
      }
      if (e.name == "or") {
        Value l = eval(*e.kids[0], f);
        return truthy(l) ? l : eval(*e.kids[1], f);
      }
      return binary_op(e.name, eval(*e.kids[0], f), eval(*e.kids[1], f));
    }
    case ExprKind::Compare: {
      Value l = eval(*e.kids[0], f);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value r = eval(*e.kids[k + 1], f);
        const std::string& op = e.ops[k];
        bool ok;
        if (op == "==") ok = equals(l, r);
        else if (op == "!=") ok = !equals(l, r);
        else if (op == "in") ok = contains(r, l);
        else if (op == "not in") ok = !contains(r, l);
        else {
          int c = compare(l, r);
          ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
        }
        if (!ok) return Value::boolean(false);
        l = std::move(r);
      }
      return Value::boolean(true);
    }
    case ExprKind::Cond:
      if (truthy(eval(*e.kids[1], f))) return eval(*e.kids[0], f);
      return e.kids[2] ? eval(*e.kids[2], f) : Value::undefined("conditional expression has no else branch");
  }
  return Value::undefined();
}

}  // namespace qforge::jinja
