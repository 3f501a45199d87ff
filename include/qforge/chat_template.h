// qforge/chat_template.h — Hugging Face chat templates: a Jinja2 interpreter with the settings
// transformers' apply_chat_template uses (trim_blocks, lstrip_blocks, loop controls, tojson,
// raise_exception, strftime_now), and apply_chat_template over a Tokenizer.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace qforge {

class Tokenizer;

namespace jinja {
struct Stmt;
}

class ChatTemplate {
 public:
  // Parses once; throws qforge::Error("chat template:LINE:COL: ...") on syntax errors.
  explicit ChatTemplate(std::string source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders with `context` (a JSON object) as variables. Object key order is kept with
  // ordered_json (it matters for `tojson`); nlohmann::json objects iterate in sorted key order.
  std::string render(const nlohmann::json& context) const;
  std::string render(const nlohmann::ordered_json& context) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
};

// As transformers' tokenizer.apply_chat_template(messages, tokenize=False, ...): renders
// tok.chat_template() with messages, add_generation_prompt, bos_token/eos_token (when the
// tokenizer has them) and every key of `extra` (tools, documents, date_string, enable_thinking...).
// Throws qforge::Error when the tokenizer has no chat template.
std::string apply_chat_template(const Tokenizer& tok, const nlohmann::json& messages, bool add_generation_prompt,
                                const nlohmann::json& extra = nlohmann::json::object());
std::string apply_chat_template(const Tokenizer& tok, const nlohmann::ordered_json& messages,
                                bool add_generation_prompt, const nlohmann::ordered_json& extra);

}  // namespace qforge
