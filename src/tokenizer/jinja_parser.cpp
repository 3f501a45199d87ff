// jinja_parser.cpp — recursive-descent parser from lexer tokens to the chat-template syntax
// tree, following jinja2's grammar and operator precedence (or < and < not < comparisons <
// +,- < ~ < *,/,//,% < ** < unary < postfix/filters/tests).
#include <fmt/format.h>

#include <set>

#include "qforge/status.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace qforge::jinja {
namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Body parse_all() {
    Body body = parse_body({});
    if (cur().type != Tok::Eof) error(cur(), fmt::format("unexpected '{}'", cur().value));
    return body;
  }

 private:
  std::vector<Token> t_;
  size_t p_ = 0;

  const Token& cur() const { return t_[p_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(p_ + n, t_.size() - 1)]; }
  [[noreturn]] void error(const Token& at, const std::string& msg) const {
    throw qforge::Error(fmt::format("chat template:{}:{}: {}", at.line, at.col, msg));
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().value == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().value == n; }
  void expect_op(const char* op) {
    if (!is_op(op)) error(cur(), fmt::format("expected '{}'", op));
    ++p_;
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error(cur(), "expected a name");
    return t_[p_++].value;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) error(cur(), fmt::format("expected '%}}', got '{}'", cur().value));
    ++p_;
  }
  ExprPtr node(ExprKind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  // Parses statements until a block tag whose keyword is in `ends` (left unconsumed: p_ points
  // at the keyword name after '{%').
  Body parse_body(const std::set<std::string>& ends) {
    Body body;
    while (true) {
      const Token& tk = cur();
      if (tk.type == Tok::Eof) {
        if (!ends.empty()) error(tk, fmt::format("unexpected end of template, expected '{}'", *ends.begin()));
        return body;
      }
      if (tk.type == Tok::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Text;
        s->text = tk.value;
        s->line = tk.line;
        s->col = tk.col;
        body.push_back(std::move(s));
        ++p_;
      } else if (tk.type == Tok::VarBegin) {
        ++p_;
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Print;
        s->line = tk.line;
        s->col = tk.col;
        s->expr = parse_tuple();
        if (cur().type != Tok::VarEnd) error(cur(), fmt::format("expected '}}}}', got '{}'", cur().value));
        ++p_;
        body.push_back(std::move(s));
      } else if (tk.type == Tok::BlockBegin) {
        const Token& kw = peek();
        if (kw.type != Tok::Name) error(kw, "expected a statement name");
        if (ends.count(kw.value)) {
          ++p_;
          return body;
        }
        ++p_;
        body.push_back(parse_statement());
      } else {
        error(tk, "unexpected token");
      }
    }
  }

  StmtPtr make_stmt(StmtKind k, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = at.line;
    s->col = at.col;
    return s;
  }

  StmtPtr parse_statement() {
    Token kw = t_[p_++];
    const std::string& n = kw.value;
    if (n == "if") {
      auto s = make_stmt(StmtKind::If, kw);
      ExprPtr c = parse_tuple();
      expect_block_end();
      while (true) {
        Body b = parse_body({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(c), std::move(b));
        std::string end = t_[p_++].value;
        if (end == "elif") {
          c = parse_tuple();
          expect_block_end();
          continue;
        }
        expect_block_end();
        if (end == "else") {
          s->else_body = parse_body({"endif"});
          ++p_;
          expect_block_end();
        }
        return s;
      }
    }
    if (n == "for") {
      auto s = make_stmt(StmtKind::For, kw);
      do {
        s->targets.push_back(expect_name());
      } while (is_op(",") && (++p_, true));
      if (!is_name("in")) error(cur(), "expected 'in' in for loop");
      ++p_;
      s->expr = parse_tuple(/*with_condexpr=*/false);
      if (is_name("if")) {
        ++p_;
        s->cond = parse_expr();
      }
      if (is_name("recursive")) error(cur(), "recursive loops are not supported");
      expect_block_end();
      s->body = parse_body({"else", "endfor"});
      if (t_[p_++].value == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"});
        ++p_;
      }
      expect_block_end();
      return s;
    }
    if (n == "set") {
      std::string target = expect_name();
      if (is_op(".")) {
        ++p_;
        target += "." + expect_name();
      }
      std::vector<std::string> targets{target};
      while (is_op(",")) {
        ++p_;
        targets.push_back(expect_name());
      }
      if (is_op("=")) {
        ++p_;
        auto s = make_stmt(StmtKind::Set, kw);
        s->targets = std::move(targets);
        s->expr = parse_tuple();
        expect_block_end();
        return s;
      }
      auto s = make_stmt(StmtKind::SetBlock, kw);
      s->targets = std::move(targets);
      if (is_op("|")) s->expr = parse_filter_chain(nullptr);
      expect_block_end();
      s->body = parse_body({"endset"});
      ++p_;
      expect_block_end();
      return s;
    }
    if (n == "macro") {
      auto s = make_stmt(StmtKind::Macro, kw);
      s->text = expect_name();
      parse_params(s->params);
      expect_block_end();
      s->body = parse_body({"endmacro"});
      ++p_;
      if (cur().type == Tok::Name) ++p_;  // {% endmacro name %}
      expect_block_end();
      return s;
    }
    if (n == "call") {
      auto s = make_stmt(StmtKind::CallBlock, kw);
      if (is_op("(")) parse_params(s->params);
      s->expr = parse_expr();
      if (s->expr->kind != ExprKind::Call) error(kw, "expected a macro call after 'call'");
      expect_block_end();
      s->body = parse_body({"endcall"});
      ++p_;
      expect_block_end();
      return s;
    }
    if (n == "filter") {
      auto s = make_stmt(StmtKind::FilterBlock, kw);
      --p_;  // parse_filter_chain expects to sit on a '|'-like separator; emulate with the keyword
      s->expr = parse_filter_chain(nullptr);
      expect_block_end();
      s->body = parse_body({"endfilter"});
      ++p_;
      expect_block_end();
      return s;
    }
    if (n == "generation") {  // transformers' AssistantTracker: render the body unchanged
      auto s = make_stmt(StmtKind::Scope, kw);
      expect_block_end();
      s->body = parse_body({"endgeneration"});
      ++p_;
      expect_block_end();
      return s;
    }
    if (n == "break" || n == "continue") {
      auto s = make_stmt(n == "break" ? StmtKind::Break : StmtKind::Continue, kw);
      expect_block_end();
      return s;
    }
    error(kw, fmt::format("unknown statement '{}'", n));
  }

  void parse_params(std::vector<std::pair<std::string, ExprPtr>>& params) {
    expect_op("(");
    while (!is_op(")")) {
      std::string name = expect_name();
      ExprPtr def;
      if (is_op("=")) {
        ++p_;
        def = parse_expr();
      }
      params.emplace_back(std::move(name), std::move(def));
      if (!is_op(")")) expect_op(",");
    }
    ++p_;
  }

  // Tuples without parentheses: `a, b` (used in {{ }}, set and for).
  ExprPtr parse_tuple(bool with_condexpr = true) {
    const Token& at = cur();
    ExprPtr first = with_condexpr ? parse_expr() : parse_or();
    if (!is_op(",")) return first;
    auto t = node(ExprKind::TupleLit, at);
    t->kids.push_back(std::move(first));
    while (is_op(",")) {
      ++p_;
      if (cur().type == Tok::BlockEnd || cur().type == Tok::VarEnd || is_op(")")) break;
      t->kids.push_back(with_condexpr ? parse_expr() : parse_or());
    }
    return t;
  }

  ExprPtr parse_expr() {
    const Token& at = cur();
    ExprPtr body = parse_or();
    while (is_name("if")) {
      ++p_;
      auto c = node(ExprKind::Cond, at);
      c->kids.push_back(std::move(body));
      c->kids.push_back(parse_or());
      if (is_name("else")) {
        ++p_;
        c->kids.push_back(parse_expr());
      } else {
        c->kids.push_back(nullptr);
      }
      body = std::move(c);
    }
    return body;
  }

  ExprPtr binary(const char* op, ExprPtr l, ExprPtr r, const Token& at) {
    auto b = node(ExprKind::Binary, at);
    b->name = op;
    b->kids.push_back(std::move(l));
    b->kids.push_back(std::move(r));
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (is_name("or")) {
      const Token& at = t_[p_++];
      l = binary("or", std::move(l), parse_and(), at);
    }
    return l;
  }
  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_name("and")) {
      const Token& at = t_[p_++];
      l = binary("and", std::move(l), parse_not(), at);
    }
    return l;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      auto u = node(ExprKind::Unary, t_[p_++]);
      u->name = "not";
      u->kids.push_back(parse_not());
      return u;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    const Token& at = cur();
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op && (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
                                    cur().value == ">" || cur().value == "<=" || cur().value == ">=")) {
        op = cur().value;
        ++p_;
      } else if (is_name("in")) {
        op = "in";
        ++p_;
      } else if (is_name("not") && peek().type == Tok::Name && peek().value == "in") {
        op = "not in";
        p_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(ExprKind::Compare, at);
        cmp->kids.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->kids.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = t_[p_++];
      l = binary(at.value.c_str(), std::move(l), parse_concat(), at);
    }
    return l;
  }
  ExprPtr parse_concat() {
    ExprPtr l = parse_math2();
    while (is_op("~")) {
      const Token& at = t_[p_++];
      l = binary("~", std::move(l), parse_math2(), at);
    }
    return l;
  }
  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = t_[p_++];
      l = binary(at.value.c_str(), std::move(l), parse_pow(), at);
    }
    return l;
  }
  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (is_op("**")) {
      const Token& at = t_[p_++];
      l = binary("**", std::move(l), parse_unary(true), at);
    }
    return l;
  }
  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      auto u = node(ExprKind::Unary, cur());
      u->name = t_[p_++].value;
      u->kids.push_back(parse_unary(false));
      e = std::move(u);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& at = cur();
    switch (at.type) {
      case Tok::Name: {
        ++p_;
        if (at.value == "true" || at.value == "True") return literal(Value::boolean(true), at);
        if (at.value == "false" || at.value == "False") return literal(Value::boolean(false), at);
        if (at.value == "none" || at.value == "None") return literal(Value::none(), at);
        auto n = node(ExprKind::Name, at);
        n->name = at.value;
        return n;
      }
      case Tok::String: {
        std::string s = at.value;
        ++p_;
        while (cur().type == Tok::String) s += t_[p_++].value;  // adjacent literals concatenate
        return literal(Value::string(s), at);
      }
      case Tok::Int: {
        ++p_;
        try {
          return literal(Value::integer(std::stoll(at.value)), at);
        } catch (const std::exception&) {
          error(at, "integer literal out of range");
        }
      }
      case Tok::Float: ++p_; return literal(Value::number(std::stod(at.value)), at);
      case Tok::Op:
        if (at.value == "(") {
          ++p_;
          if (is_op(")")) {
            ++p_;
            return node(ExprKind::TupleLit, at);
          }
          ExprPtr e = parse_tuple();
          expect_op(")");
          return e;
        }
        if (at.value == "[") {
          ++p_;
          auto l = node(ExprKind::ListLit, at);
          while (!is_op("]")) {
            l->kids.push_back(parse_expr());
            if (!is_op("]")) expect_op(",");
          }
          ++p_;
          return l;
        }
        if (at.value == "{") {
          ++p_;
          auto d = node(ExprKind::DictLit, at);
          while (!is_op("}")) {
            d->kids.push_back(parse_expr());
            expect_op(":");
            d->kids.push_back(parse_expr());
            if (!is_op("}")) expect_op(",");
          }
          ++p_;
          return d;
        }
        break;
      default: break;
    }
    error(at, at.type == Tok::BlockEnd || at.type == Tok::VarEnd || at.type == Tok::Eof
                  ? std::string("unexpected end of expression")
                  : fmt::format("unexpected '{}'", at.value));
  }
  ExprPtr literal(Value v, const Token& at) {
    auto e = node(ExprKind::Literal, at);
    e->literal = std::move(v);
    return e;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const Token& at = cur();
      if (is_op(".")) {
        ++p_;
        auto g = node(ExprKind::GetAttr, at);
        if (cur().type == Tok::Int) {  // foo.0 is foo[0]
          g->kind = ExprKind::GetItem;
          g->kids.push_back(std::move(e));
          g->kids.push_back(literal(Value::integer(std::stoll(t_[p_++].value)), at));
        } else {
          g->name = expect_name();
          g->kids.push_back(std::move(e));
        }
        e = std::move(g);
      } else if (is_op("[")) {
        ++p_;
        e = parse_subscript(std::move(e), at);
      } else if (is_op("(")) {
        e = parse_call(std::move(e), ExprKind::Call, at);
      } else {
        return e;
      }
    }
  }
  ExprPtr parse_subscript(ExprPtr obj, const Token& at) {
    ExprPtr parts[3];
    bool is_slice = false;
    for (int k = 0; k < 3; ++k) {
      if (!is_op(":") && !is_op("]")) parts[k] = parse_expr();
      if (k < 2 && is_op(":")) {
        ++p_;
        is_slice = true;
        continue;
      }
      break;
    }
    expect_op("]");
    auto e = node(is_slice ? ExprKind::Slice : ExprKind::GetItem, at);
    e->kids.push_back(std::move(obj));
    if (!is_slice && !parts[0]) error(at, "expected an index");
    e->kids.push_back(std::move(parts[0]));
    if (is_slice) {
      e->kids.push_back(std::move(parts[1]));
      e->kids.push_back(std::move(parts[2]));
    }
    return e;
  }
  // Parses `(args, kw=val)` into e (kids after kids[0]/the input, kwargs).
  void parse_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().value == "=") {
        std::string k = t_[p_].value;
        p_ += 2;
        e.kwargs.emplace_back(std::move(k), parse_expr());
      } else {
        if (!e.kwargs.empty()) error(cur(), "positional argument follows keyword argument");
        e.kids.push_back(parse_expr());
      }
      if (!is_op(")")) expect_op(",");
    }
    ++p_;
  }
  ExprPtr parse_call(ExprPtr callee, ExprKind kind, const Token& at) {
    auto c = node(kind, at);
    c->line = callee->line;  // errors inside a call point at the callee, e.g. raise_exception
    c->col = callee->col;
    c->kids.push_back(std::move(callee));
    parse_args(*c);
    return c;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter_chain(std::move(e));
      } else if (is_name("is")) {
        const Token& at = t_[p_++];
        auto t = node(ExprKind::Test, at);
        if (is_name("not")) {
          ++p_;
          t->negated = true;
        }
        t->name = expect_name();
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          parse_args(*t);
        } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                    cur().type == Tok::Float || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") &&
                   !is_name("in") && !is_name("not") && !is_name("is")) {
          t->kids.push_back(parse_postfix(parse_primary()));  // `is divisibleby 3`
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = parse_call(std::move(e), ExprKind::Call, cur());
      } else {
        return e;
      }
    }
  }
  // One `| name(args)` step; repeated while '|' follows. `input` may be null (filter blocks).
  ExprPtr parse_filter_chain(ExprPtr input) {
    do {
      const Token& at = t_[p_++];  // the '|' (or 'filter' keyword)
      auto f = node(ExprKind::Filter, at);
      f->name = expect_name();
      while (is_op(".")) {  // dotted filter names are not used by chat templates; reject clearly
        error(cur(), "dotted filter names are not supported");
      }
      f->kids.push_back(std::move(input));
      if (is_op("(")) parse_args(*f);
      input = std::move(f);
    } while (is_op("|"));
    return input;
  }
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(tokenize(source)).parse_all(); }

}  // namespace qforge::jinja
