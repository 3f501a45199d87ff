// jinja_ast.h — syntax tree of a parsed chat template: expressions (literals, names, attribute
// and item access, slices, calls, filters, tests, operators, conditionals) and statements
// (text, output, if, for, set, macro, call, filter, generation, break/continue).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace qforge::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind {
  Literal, Name, ListLit, TupleLit, DictLit,  // DictLit kids: k0, v0, k1, v1, ...
  GetAttr,   // kids[0].name
  GetItem,   // kids[0][kids[1]]
  Slice,     // kids[0][kids[1]:kids[2]:kids[3]] (null kids allowed)
  Call,      // kids[0](kids[1..], kwargs)
  Filter,    // kids[0] | name(kids[1..], kwargs)
  Test,      // kids[0] is [not] name(kids[1..])
  Unary,     // name in {"-", "+", "not"}
  Binary,    // name is the operator; and/or short-circuit
  Compare,   // kids[0] ops[0] kids[1] ops[1] kids[2] ... (chained)
  Cond,      // kids[0] if kids[1] else kids[2] (kids[2] may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0, col = 0;
  std::string name;
  Value literal;
  std::vector<ExprPtr> kids;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

enum class StmtKind { Text, Print, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Scope, Break, Continue };

struct Stmt {
  StmtKind kind;
  int line = 0, col = 0;
  std::string text;                   // Text; Macro name
  std::vector<std::string> targets;   // For/Set: names (Set "ns.attr" keeps the dot)
  ExprPtr expr;                       // Print/Set value, For iterable, CallBlock call, FilterBlock filter chain
  ExprPtr cond;                       // For's inline `if`
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: (condition, body)...
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro/CallBlock parameters with defaults
};

// Parses tokens from tokenize(); throws qforge::Error with the template position.
Body parse_template(std::string_view source);

}  // namespace qforge::jinja
