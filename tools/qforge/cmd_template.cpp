// tools/qforge/cmd_template.cpp — `qforge template`: renders a model's chat template over a
// messages file as transformers' apply_chat_template does, and shows the token ids
// (encode(text, add_special=false), as apply_chat_template(tokenize=True)).
#include <fstream>
#include <sstream>

#include "command.h"
#include "qforge/chat_template.h"
#include "qforge/status.h"
#include "qforge/tokenizer.h"

namespace qforge::cli {
namespace {
struct TemplateOptions {
  std::string model;
  std::string messages;
  bool add_generation_prompt = false;
  bool json = false;
};

Registrar reg("template", "Render a model's chat template over a messages JSON file", [](CLI::App& app) {
  auto o = std::make_shared<TemplateOptions>();
  app.add_option("--model", o->model, "Model directory (tokenizer.json, tokenizer_config.json)")->required();
  app.add_option("--messages", o->messages, "JSON file: [{role, content}, ...] or {\"messages\": [...], ...}")
      ->required();
  app.add_flag("--add-generation-prompt", o->add_generation_prompt, "Append the assistant turn header");
  app.add_flag("--json", o->json, "Print one JSON object {text, ids}");
  return [o]() -> int {
    std::ifstream in(o->messages, std::ios::binary);
    if (!in) throw Error("--messages: cannot open " + o->messages);
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::ordered_json doc;
    try {
      doc = nlohmann::ordered_json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
      throw Error("--messages: " + o->messages + " is not valid JSON (" + e.what() + ")");
    }
    // {"messages": [...], other keys...}: the other keys become template variables (tools, ...).
    nlohmann::ordered_json messages, extra = nlohmann::ordered_json::object();
    if (doc.is_array()) {
      messages = doc;
    } else if (doc.is_object() && doc.contains("messages") && doc["messages"].is_array()) {
      messages = doc["messages"];
      for (auto it = doc.begin(); it != doc.end(); ++it)
        if (it.key() != "messages") extra[it.key()] = it.value();
    } else {
      throw Error("--messages: " + o->messages + " must hold a list of {role, content} or {\"messages\": [...]}");
    }
    auto tok = Tokenizer::load(o->model);
    std::string text = apply_chat_template(*tok, messages, o->add_generation_prompt, extra);
    if (o->json) {
      nlohmann::json j;
      j["text"] = text;
      j["ids"] = tok->encode(text, /*add_special=*/false);
      print_json(j);
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);  // exactly the rendered text
    }
    return 0;
  };
});
}  // namespace
}  // namespace qforge::cli
