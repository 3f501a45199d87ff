// jinja_interpreter.h — evaluates a parsed chat template against a context: scopes (a fresh
// scope per loop iteration and macro call, as jinja2), loop variables, macros and call blocks,
// break/continue, and the builtin filters/tests/methods/globals from jinja_builtins.cpp.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>

#include "tokenizer/jinja_ast.h"

namespace qforge::jinja {

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
  const Value* find(const std::string& name) const;
};

class Interpreter {
 public:
  // `globals` is the bottom scope (render context plus builtin globals).
  explicit Interpreter(std::shared_ptr<Frame> globals) : globals_(std::move(globals)) {}
  std::string render(const Body& body);

  Value eval(const Expr& e, const std::shared_ptr<Frame>& f);
  // Builtins, also used by filters such as map/select.
  Value apply_filter(const std::string& name, const Value& input, Args& args);
  bool apply_test(const std::string& name, const Value& input, Args& args);
  static Value call(const Value& callee, Args& args);

 private:
  enum class Flow { Normal, Break, Continue };
  std::shared_ptr<Frame> globals_;
  std::string out_;

  Flow exec_body(const Body& body, const std::shared_ptr<Frame>& f);
  Flow exec(const Stmt& s, const std::shared_ptr<Frame>& f);
  Flow exec_for(const Stmt& s, const std::shared_ptr<Frame>& f);
  Value make_macro(const Stmt& s, const std::shared_ptr<Frame>& f);
  std::string capture(const Body& body, const std::shared_ptr<Frame>& f);
  Value eval_impl(const Expr& e, const std::shared_ptr<Frame>& f);
  Args eval_args(const Expr& e, size_t first, const std::shared_ptr<Frame>& f);
};

// Builtins (jinja_builtins.cpp).
Value get_attr(const Value& obj, const std::string& name);  // obj.name: attribute, then item
Value get_item(const Value& obj, const Value& key);         // obj[key]: item, then attribute
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
Value binary_op(const std::string& op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);
List iterate(const Value& v);  // for-loop items: list elements, dict keys, string characters
void add_builtin_globals(Frame& f);
Value filter_value(Interpreter& in, const std::string& name, const Value& v, Args& args);
bool test_value(Interpreter& in, const std::string& name, const Value& v, Args& args);

}  // namespace qforge::jinja
