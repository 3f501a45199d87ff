// chat_template.cpp — ChatTemplate (parse once, render many) and apply_chat_template, the
// transformers-compatible entry point that fills in messages and the tokenizer's special tokens.
#include "qforge/chat_template.h"

#include "qforge/status.h"
#include "qforge/tokenizer.h"
#include "tokenizer/jinja_interpreter.h"

namespace qforge {

ChatTemplate::ChatTemplate(std::string source)
    : source_(std::move(source)),
      body_(std::make_shared<const jinja::Body>(jinja::parse_template(source_))) {}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

namespace {
template <class J>
std::string render_impl(const jinja::Body& body, const J& context) {
  if (!context.is_object() && !context.is_null()) throw Error("chat template: render context must be a JSON object");
  auto globals = std::make_shared<jinja::Frame>();
  jinja::add_builtin_globals(*globals);
  if (context.is_object())
    for (auto it = context.begin(); it != context.end(); ++it) globals->vars[it.key()] = jinja::from_json(it.value());
  return jinja::Interpreter(globals).render(body);
}

template <class J>
std::string apply_impl(const Tokenizer& tok, const J& messages, bool add_generation_prompt, const J& extra) {
  std::string source = tok.chat_template();
  if (source.empty())
    throw Error("tokenizer has no chat_template (tokenizer_config.json / chat_template.jinja); cannot format messages");
  if (!messages.is_array()) throw Error("chat template: messages must be a JSON array of {role, content} objects");
  if (!extra.is_null() && !extra.is_object()) throw Error("chat template: extra variables must be a JSON object");
  J context = J::object();
  if (!tok.bos_token().empty()) context["bos_token"] = tok.bos_token();
  if (!tok.eos_token().empty()) context["eos_token"] = tok.eos_token();
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) context[it.key()] = it.value();
  context["messages"] = messages;
  context["add_generation_prompt"] = add_generation_prompt;
  return ChatTemplate(std::move(source)).render(context);
}
}  // namespace

std::string ChatTemplate::render(const nlohmann::json& context) const { return render_impl(*body_, context); }
std::string ChatTemplate::render(const nlohmann::ordered_json& context) const { return render_impl(*body_, context); }

std::string apply_chat_template(const Tokenizer& tok, const nlohmann::json& messages, bool add_generation_prompt,
                                const nlohmann::json& extra) {
  return apply_impl(tok, messages, add_generation_prompt, extra);
}
std::string apply_chat_template(const Tokenizer& tok, const nlohmann::ordered_json& messages,
                                bool add_generation_prompt, const nlohmann::ordered_json& extra) {
  return apply_impl(tok, messages, add_generation_prompt, extra);
}

}  // namespace qforge
