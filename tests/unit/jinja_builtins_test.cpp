// tests/unit/jinja_builtins_test.cpp — Python-compatible values, operators, filters, tests and
// string/dict/list methods of the chat-template interpreter. Expected strings were checked with
// Python jinja2 3.1.6 (transformers' tojson override for `tojson`).
#include <gtest/gtest.h>

#include "qforge/chat_template.h"
#include "qforge/status.h"

namespace {
using qforge::ChatTemplate;
using J = nlohmann::ordered_json;

std::string R(const std::string& src, const J& ctx = J::object()) { return ChatTemplate(src).render(ctx); }

TEST(JinjaValues, PythonPrinting) {
  EXPECT_EQ(R("{{ [1, 'a', none, true, 1.5, {'a': [1e20, 1e-5]}] }}"), "[1, 'a', None, True, 1.5, {'a': [1e+20, 1e-05]}]");
  EXPECT_EQ(R("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 123456789.0 }} {{ -0.0001 }} {{ 2.5e-5 }}"),
            "1.0 0.30000000000000004 1e+16 123456789.0 -0.0001 2.5e-05");
  EXPECT_EQ(R("{{ \"it's\" }} {{ [\"it's\", 'a\"b', 'x\\ny'] }}"), "it's [\"it's\", 'a\"b', 'x\\ny']");
  EXPECT_EQ(R("{{ none }}|{{ undefined_var }}|{{ True }}|{{ false }}"), "None||True|False");
  EXPECT_EQ(R("{{ x }}", {{"x", {{"k", {1, nullptr, false}}}}}), "{'k': [1, None, False]}");
}

TEST(JinjaValues, Arithmetic) {
  EXPECT_EQ(R("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 4 / 2 }} {{ 2 ** 10 }} {{ 'ab' * 3 }}"),
            "3 -4 3.5 2 2.0 1024 ababab");
  EXPECT_EQ(R("{{ 1 + 2.0 }} {{ 'a' ~ 1 ~ none }} {{ [1] + [2] }} {{ -(3) }} {{ 7.5 // 2 }} {{ true + 1 }}"),
            "3.0 a1None [1, 2] -3 3.0 2");
  EXPECT_EQ(R("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ [1,2] == [1,2] }}"),
            "True False True True True");
  EXPECT_EQ(R("{{ 'b' in 'abc' }} {{ 2 not in [1,2] }} {{ 'k' in {'k': 1} }}"), "True False True");
  EXPECT_EQ(R("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }}|{{ not [] }}"), "x y |True");
  EXPECT_EQ(R("{{ 'a' if x else 'b' }} {{ 'c' if y }}|", {{"y", false}}), "b |");
  EXPECT_EQ(R("{{ '%s-%d' % ('a', 3) }} {{ '%s!' | format('hi') }}"), "a-3 hi!");
}

TEST(JinjaValues, IndexingAndSlicing) {
  EXPECT_EQ(R("{{ 'abc'[::-1] }} {{ [1,2,3][-2:] }} {{ [1,2,3,4,5][1:4:2] }} {{ 'héllo'[1] }} {{ 'héllo'[-3:] }}"),
            "cba [2, 3] [2, 4] é llo");
  EXPECT_EQ(R("{{ m[0]['role'] }} {{ m[0].role }} {{ m[-1].content }} {{ m.0.role }}",
              {{"m", J::array({{{"role", "user"}, {"content", "a"}}, {{"role", "sys"}, {"content", "b"}}})}}),
            "user user b user");
  EXPECT_EQ(R("{{ [1][5] is defined }} {{ d.missing is defined }} {{ d.k.x is defined }}", {{"d", {{"k", "s"}}}}),
            "False False False");
}

TEST(JinjaFilters, StringsAndSequences) {
  EXPECT_EQ(R("{{ '  a b \n' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'héllo' | upper }}|{{ 'ÀB' | lower }}"),
            "a b|a|HÉLLO|àb");
  EXPECT_EQ(R("{{ 'hello world' | capitalize }} {{ 'hello wORLD-x' | title }} {{ 'aaa' | replace('a', 'b', 2) }}"),
            "Hello world Hello World-X bba");
  EXPECT_EQ(R("{{ 'héllo' | length }} {{ [1,2] | count }} {{ {'a':1} | length }} {{ 'abc' | reverse }} "
              "{{ [1,2,3] | reverse | list }}"),
            "5 2 1 cba [3, 2, 1]");
  EXPECT_EQ(R("{{ [1,2,3] | join(', ') }} {{ [1,2] | first }} {{ [1,2] | last }} {{ 'ab' | list }}"),
            "1, 2, 3 1 2 ['a', 'b']");
  EXPECT_EQ(R("{{ x | default('d') }} {{ '' | default('d', true) }} {{ none | default('d') }} {{ 0 | d(5, boolean=true) }}"),
            "d d None 5");
  EXPECT_EQ(R("{{ '42' | int }} {{ 'x' | int }} {{ 3.9 | int }} {{ '2.5' | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} "
              "{{ 2.5 | round }} {{ 3 | string }}"),
            "42 0 3 2.5 3 2.57 2.0 3");
  EXPECT_EQ(R("{{ ['b','A','c'] | sort }} {{ ['b','A','c'] | sort(reverse=true, case_sensitive=true) }} "
              "{{ [3,1,3,2] | unique | list }} {{ [3,1,2] | max }} {{ [3,1,2] | min }} {{ [1,2,3] | sum }}"),
            "['A', 'b', 'c'] ['c', 'b', 'A'] [3, 1, 2] 3 1 6");
  EXPECT_EQ(R("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent(width='>', blank=true) }}"),
            "a\n  b\n\n  c|  a\n  b|a\n>\n>b");
  EXPECT_EQ(R("{{ [1,2,3,4,5] | batch(2) | list }} {{ [1,2,3] | batch(2, 0) | list }}"), "[[1, 2], [3, 4], [5]] [[1, 2], [3, 0]]");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | items | list }} {{ {'b': 1, 'a': 2} | dictsort }}"),
            "[['b', 1], ['a', 2]] [['a', 2], ['b', 1]]");  // Python prints tuples; see docs
}

TEST(JinjaFilters, AttributeFiltersAndTests) {
  J ctx = {{"m", J::array({{{"role", "system"}, {"n", 3}}, {{"role", "user"}, {"n", 1}}, {{"role", "user"}, {"n", 2}}})}};
  EXPECT_EQ(R("{{ m | selectattr('role', 'equalto', 'user') | map(attribute='n') | list }}", ctx), "[1, 2]");
  EXPECT_EQ(R("{{ m | rejectattr('role', 'eq', 'user') | map(attribute='role') | join }}", ctx), "system");
  EXPECT_EQ(R("{{ m | sort(attribute='n') | map(attribute='n') | list }} {{ m | max(attribute='n') }}", ctx),
            "[1, 2, 3] {'role': 'system', 'n': 3}");
  EXPECT_EQ(R("{{ [1,2,3,4] | select('odd') | list }} {{ [1,2,3,4] | reject('divisibleby', 2) | list }} "
              "{{ [0, 1, ''] | select | list }} {{ ['a','b'] | map('upper') | list }} {{ m | map(attribute='x', default=0) | list }}",
              ctx),
            "[1, 3] [1, 3] [1] ['A', 'B'] [0, 0, 0]");
  EXPECT_EQ(R("{{ m | selectattr('n', 'gt', 1) | list | length }} {{ m | selectattr('x', 'undefined') | list | length }}", ctx),
            "2 3");
}

TEST(JinjaFilters, ToJsonLikeTransformers) {
  J ctx = {{"t", {{"name", "f"}, {"b", {1, 2.0, nullptr, true}}, {"s", "é\"\n"}, {"e", J::object()}, {"l", J::array()}}}};
  EXPECT_EQ(R("{{ t | tojson }}", ctx), R"({"name": "f", "b": [1, 2.0, null, true], "s": "é\"\n", "e": {}, "l": []})");
  EXPECT_EQ(R("{{ t.b | tojson(indent=2) }}", ctx), "[\n  1,\n  2.0,\n  null,\n  true\n]");
  EXPECT_EQ(R("{{ {'b': 1, 'a': {'c': 2}} | tojson(indent=4) }}"), "{\n    \"b\": 1,\n    \"a\": {\n        \"c\": 2\n    }\n}");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }} {{ 'é' | tojson(ensure_ascii=true) }} {{ '😀' | tojson(true) }}"),
            R"({"a": 2, "b": 1} "\u00e9" "\ud83d\ude00")");
}

TEST(JinjaTests, IsTests) {
  EXPECT_EQ(R("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} "
              "{{ 1.5 is integer }} {{ 1 is integer }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is iterable }} "
              "{{ true is boolean }} {{ true is true }} {{ 0 is false }} {{ false is false }}"),
            "False True True True True False True True True True True True False True");
  EXPECT_EQ(R("{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'a' is equalto 'a' }} "
              "{{ 1 is eq 2 }} {{ 1 is ne 2 }} {{ 1 is lt 2 }} {{ 1 is gt 2 }} {{ x is not defined }} {{ range is callable }}"),
            "True True True False True False True True False True True");
}

TEST(JinjaMethods, StringDictList) {
  EXPECT_EQ(R("[{{ '  a  '.strip() }}|{{ 'xay'.strip('xy') }}|{{ '\na'.lstrip('\n') }}|{{ 'a\n\n'.rstrip() }}]"), "[a|a|a|a]");
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'AbC'.lower() }} {{ 'abc'.upper() }} "
              "{{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }}"),
            "True True abc ABC Hello World Hello");
  EXPECT_EQ(R("{{ 'a b  c'.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a</think>b</think>c'.split('</think>')[-1] }} "
              "{{ 'abcabc'.replace('b', 'x') }} {{ 'abcabc'.find('c') }} {{ 'abcabc'.count('bc') }} {{ '-'.join(['a','b']) }}"),
            "['a', 'b', 'c'] ['a', 'b,c'] c axcaxc 2 2 a-b");
  EXPECT_EQ(R("{{ '{} and {name}'.format(1, name='x') }} {{ d.get('a') }} {{ d.get('z', 'dflt') }} {{ d.get('z') }} "
              "{{ d.keys() | list }} {{ d.values() | list }}",
              {{"d", {{"a", 1}, {"b", 2}}}}),
            "1 and x 1 dflt None ['a', 'b'] [1, 2]");
  EXPECT_EQ(R("{% set l = [1] %}{% set _ = l.append(2) %}{{ l }}"), "[1, 2]");
}

TEST(JinjaGlobals, RangeNamespaceStrftime) {
  EXPECT_EQ(R("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }}"), "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
  EXPECT_EQ(R("{% set ns = namespace(a=1, b='x') %}{{ ns.a }}{{ ns.b }}{{ ns.c is defined }}"), "1xFalse");
  std::string year = R("{{ strftime_now('%Y') }}");
  EXPECT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
}

}  // namespace
