// tokenizer/bpe_model.cpp — BPE encoding as the Rust `tokenizers` crate does it (see bpe_model.h).
#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>

#include "qforge/status.h"
#include "tokenizer/text_util.h"

namespace qforge::tok {

namespace {
uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
std::string opt_string(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}
}  // namespace

BpeModel::BpeModel(const nlohmann::json& m) {
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw Error("tokenizer.json: BPE model has no \"vocab\" object");
  int32_t max_id = -1;
  for (auto& [tok, id] : m["vocab"].items()) {
    int32_t v = id.get<int32_t>();
    if (v < 0) throw Error("tokenizer.json: negative id for token '" + tok + "'");
    vocab_.emplace(tok, v);
    max_id = std::max(max_id, v);
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (auto& [tok, id] : vocab_) id_to_token_[static_cast<size_t>(id)] = tok;
  fuse_unk_ = m.value("fuse_unk", false);
  byte_fallback_ = m.value("byte_fallback", false);
  ignore_merges_ = m.value("ignore_merges", false);
  prefix_ = opt_string(m, "continuing_subword_prefix");
  suffix_ = opt_string(m, "end_of_word_suffix");
  if (auto unk = opt_string(m, "unk_token"); !unk.empty()) {
    if (auto it = vocab_.find(unk); it != vocab_.end()) unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  if (m.contains("merges") && m["merges"].is_array()) {
    const auto& merges = m["merges"];
    merges_.reserve(merges.size() * 2);
    int32_t rank = 0;
    for (auto& e : merges) {
      std::string a, b;
      if (e.is_string()) {
        const std::string& s = e.get_ref<const std::string&>();
        auto sp = s.find(' ');
        if (sp == std::string::npos) throw Error("tokenizer.json: merge '" + s + "' is not \"a b\"");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        throw Error("tokenizer.json: merge #" + std::to_string(rank) + " is neither \"a b\" nor [a, b]");
      }
      auto ia = vocab_.find(a), ib = vocab_.find(b);
      std::string merged = a + (prefix_.empty() || b.compare(0, prefix_.size(), prefix_) != 0 ? b : b.substr(prefix_.size()));
      auto im = vocab_.find(merged);
      if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
        throw Error("tokenizer.json: merge '" + a + " " + b + "' uses a token missing from the vocab");
      merges_.insert_or_assign(pair_key(ia->second, ib->second), std::make_pair(rank, im->second));
      ++rank;
    }
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  const std::string& s = id_to_token_[static_cast<size_t>(id)];
  if (s.empty() && !vocab_.count(s)) return nullptr;
  return &s;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = word.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t start = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheMaxEntries) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(start), out.end()));
  }
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  // 1. Initial symbols: one per character (with prefix/suffix), byte fallback or unk.
  std::vector<int32_t> sym;
  sym.reserve(w.size());
  int32_t pending_unk = -1;  // an <unk> not yet emitted (fuse_unk extends it)
  std::string buf;
  for (size_t i = 0, n; i < w.size(); i += n) {
    n = utf8_char_len(static_cast<unsigned char>(w[i]));
    if (i + n > w.size()) n = w.size() - i;
    bool first = i == 0, last = i + n >= w.size();
    std::string_view ch = w.substr(i, n);
    const std::string* key_owner = nullptr;
    if ((!first && !prefix_.empty()) || (last && !suffix_.empty())) {
      buf.clear();
      if (!first) buf += prefix_;
      buf += ch;
      if (last) buf += suffix_;
      key_owner = &buf;
    }
    std::string_view key = key_owner ? std::string_view(*key_owner) : ch;
    if (auto it = vocab_.find(key); it != vocab_.end()) {
      if (pending_unk >= 0) {
        sym.push_back(pending_unk);
        pending_unk = -1;
      }
      sym.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : key) all &= byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : key) sym.push_back(byte_ids_[b]);
        continue;
      }
    }
    if (!unk_id_) throw Error("tokenizer: character '" + std::string(ch) + "' is not in the vocabulary and the model has no unk_token");
    if (pending_unk >= 0 && !fuse_unk_) sym.push_back(pending_unk);
    pending_unk = *unk_id_;
  }
  if (pending_unk >= 0) sym.push_back(pending_unk);

  // 2. Merge by rank with a min-heap over (rank, position) on a doubly linked list.
  const size_t n = sym.size();
  if (n > 1 && !merges_.empty()) {
    std::vector<int32_t> prev(n), next(n);
    std::vector<uint8_t> alive(n, 1);
    for (size_t i = 0; i < n; ++i) {
      prev[i] = static_cast<int32_t>(i) - 1;
      next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
    }
    struct Cand {
      int32_t rank;
      int32_t pos;
      int32_t new_id;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<Cand> heap_store;
    heap_store.reserve(n);
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap(std::greater<Cand>(), std::move(heap_store));
    for (size_t i = 0; i + 1 < n; ++i) {
      if (auto it = merges_.find(pair_key(sym[i], sym[i + 1])); it != merges_.end())
        heap.push({it->second.first, static_cast<int32_t>(i), it->second.second});
    }
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      auto p = static_cast<size_t>(c.pos);
      if (!alive[p] || next[p] < 0) continue;
      auto q = static_cast<size_t>(next[p]);
      auto it = merges_.find(pair_key(sym[p], sym[q]));
      if (it == merges_.end() || it->second.second != c.new_id) continue;  // stale entry
      sym[p] = c.new_id;
      alive[q] = 0;
      next[p] = next[q];
      if (next[q] >= 0) prev[static_cast<size_t>(next[q])] = c.pos;
      if (prev[p] >= 0) {
        auto l = static_cast<size_t>(prev[p]);
        if (auto m = merges_.find(pair_key(sym[l], sym[p])); m != merges_.end())
          heap.push({m->second.first, prev[p], m->second.second});
      }
      if (next[p] >= 0) {
        if (auto m = merges_.find(pair_key(sym[p], sym[static_cast<size_t>(next[p])])); m != merges_.end())
          heap.push({m->second.first, c.pos, m->second.second});
      }
    }
    for (size_t i = 0; i < n; ++i)
      if (alive[i]) out.push_back(sym[i]);
    return;
  }
  out.insert(out.end(), sym.begin(), sym.end());
}

}  // namespace qforge::tok
