// tests/unit/jinja_syntax_test.cpp — chat-template Jinja syntax: whitespace control with
// trim_blocks/lstrip_blocks, statements (if/for/set/macro/call/filter/generation/break),
// loop variables, scoping, and errors that name the template position.
#include <gtest/gtest.h>

#include "qforge/chat_template.h"
#include "qforge/status.h"

namespace {
using qforge::ChatTemplate;
using J = nlohmann::ordered_json;

std::string R(const std::string& src, const J& ctx = J::object()) { return ChatTemplate(src).render(ctx); }
std::string err(const std::string& src, const J& ctx = J::object()) {
  try {
    R(src, ctx);
  } catch (const qforge::Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(JinjaWhitespace, TrimAndLstripBlocks) {
  // Expected strings produced by Python jinja2 3.1.6 with trim_blocks=True, lstrip_blocks=True.
  EXPECT_EQ(R("  {% if true %}\n  x\n  {% endif %}\n  y\n"), "  x\n  y");
  EXPECT_EQ(R("a\n{% for i in [1,2] %}\n{{ i }}\n{% endfor %}\nb"), "a\n1\n2\nb");
  EXPECT_EQ(R("{{ 'x' }}\n{{ 'y' }}"), "x\ny");  // no trim after }}
  EXPECT_EQ(R("a {# c #}\nb"), "a b");            // comment: lstrip only at line start, trim after
  EXPECT_EQ(R("  {# c #}\nb"), "b");
  EXPECT_EQ(R("x  {%+ if true %}y{% endif %}"), "x  y");
  EXPECT_EQ(R("{% if true +%}\ny{% endif %}"), "\ny");
  EXPECT_EQ(R("trailing\n"), "trailing");  // keep_trailing_newline=False
  EXPECT_EQ(R("a\r\nb"), "a\nb");
}

TEST(JinjaWhitespace, MinusModifiers) {
  EXPECT_EQ(R("a  \n  {{- 'b' -}}  \n c"), "abc");
  EXPECT_EQ(R("a \n {%- if true -%} \n b \n {%- endif -%} \n c"), "abc");
  EXPECT_EQ(R("a \n {#- comment -#} \n b"), "ab");
  EXPECT_EQ(R("{% raw %}{{ not parsed }}{% endraw %}"), "{{ not parsed }}");
}

TEST(JinjaStatements, IfElifElse) {
  const std::string t = "{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}";
  EXPECT_EQ(R(t, {{"x", 1}}), "one");
  EXPECT_EQ(R(t, {{"x", 2}}), "two");
  EXPECT_EQ(R(t, {{"x", 3}}), "many");
}

TEST(JinjaStatements, LoopVariables) {
  EXPECT_EQ(R("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
              "{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}"),
            "1032TrueFalse3|2121FalseFalse3|3210FalseTrue3|");
  EXPECT_EQ(R("{% for x in [1,2,3] %}{{ loop.previtem|default('-') }}{{ loop.nextitem|default('-') }} {% endfor %}"),
            "-2 13 2- ");
  EXPECT_EQ(R("{% for x in [1,2,3] %}{{ loop.cycle('a','b') }}{% endfor %}"), "aba");
}

TEST(JinjaStatements, ForFilterElseUnpackBreak) {
  EXPECT_EQ(R("{% for x in [1,2,3,4] if x is even %}{{ x }}/{{ loop.length }} {% endfor %}"), "2/2 4/2 ");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1] if x > 5 %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(R("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"b", 1}, {"a", 2}}}}),
            "b=1;a=2;");
  EXPECT_EQ(R("{% for k in d %}{{ k }}{% endfor %}", {{"d", {{"b", 1}, {"a", 2}}}}), "ba");
  EXPECT_EQ(R("{% for x in range(10) %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}"
              "{{ x }}{% endfor %}"),
            "02");
  EXPECT_EQ(R("{% for x in undefined_thing %}x{% endfor %}ok"), "ok");
}

TEST(JinjaStatements, ScopingLikeJinja2) {
  // jinja2: a set inside a loop is per iteration and does not leak (python prints "110").
  EXPECT_EQ(R("{% set c = 0 %}{% for i in [1,2] %}{% set c = c + 1 %}{{ c }}{% endfor %}{{ c }}"), "110");
  EXPECT_EQ(R("{% set ns = namespace(c=0) %}{% for i in [1,2] %}{% set ns.c = ns.c + 1 %}{% endfor %}{{ ns.c }}"), "2");
  EXPECT_EQ(R("{% set ns = namespace() %}{% set ns.items = [] %}{% for i in [1,2] %}{% set _ = ns.items.append(i) %}"
              "{% endfor %}{{ ns.items }}"),
            "[1, 2]");
  EXPECT_EQ(R("{% if true %}{% set x = 5 %}{% endif %}{{ x }}"), "5");  // if does not scope
  EXPECT_EQ(R("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(R("{% set x %}a{{ 1 }}b{% endset %}[{{ x }}]"), "[a1b]");
  EXPECT_EQ(R("{% set x | upper %}abc{% endset %}{{ x }}"), "ABC");
  EXPECT_EQ(R("{% set messages = messages[1:] %}{{ messages|length }}", {{"messages", {1, 2, 3}}}), "2");
}

TEST(JinjaStatements, MacrosAndCall) {
  EXPECT_EQ(R("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
              "{{ greet('a') }} {{ greet('b', '?') }} {{ greet(punct='.', name='c') }}"),
            "Hi a! Hi b? Hi c.");
  EXPECT_EQ(R("{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}in{% endcall %}"), "<in>");
  EXPECT_EQ(R("{% macro m(x) %}{{ x }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}"), "1[2]{'k': 3}");
  EXPECT_EQ(R("{% filter upper %}abc{{ 'd' }}{% endfilter %}"), "ABCD");
  EXPECT_EQ(R("{% generation %}body{% endgeneration %}"), "body");
}

TEST(JinjaErrors, PositionsAndMessages) {
  EXPECT_EQ(err("line1\n  {{ x | foo }}"), "chat template:2:8: unknown filter 'foo'");
  EXPECT_EQ(err("{{ 1 is bar }}"), "chat template:1:6: unknown test 'bar'");
  EXPECT_EQ(err("{% if x %}"), "chat template:1:11: unexpected end of template, expected 'elif'");
  EXPECT_EQ(err("{{ raise_exception('bad roles') }}"), "chat template:1:4: bad roles");
  EXPECT_EQ(err("\n{% foo %}"), "chat template:2:4: unknown statement 'foo'");
  EXPECT_EQ(err("{{ 'a' + 1 }}"), "chat template:1:8: unsupported operand type(s) for +: 'str' and 'int'");
  EXPECT_EQ(err("{{ x.y }}"), "chat template:1:5: 'x' is undefined");  // as jinja2's Undefined
  EXPECT_EQ(err("{{ x + 1 }}"), "chat template:1:6: 'x' is undefined");
  EXPECT_EQ(err("{{ 'abc }}"), "chat template:1:4: unterminated string literal");
  EXPECT_EQ(err("{{ 1 / 0 }}"), "chat template:1:6: division by zero");
  EXPECT_EQ(err("{% set x = 1 %}{% set x.y = 2 %}"),
            "chat template:1:19: cannot assign attribute on non-namespace object 'x'");
  EXPECT_EQ(err("{{ (1 }}"), "chat template:1:9: unexpected end of template, expected '}}'");
}

}  // namespace
