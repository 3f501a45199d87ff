// model/placement.cpp — see placement.h.
#include "model/placement.h"

#include <sstream>

#include "qforge/memory_estimate.h"
#include "qforge/status.h"

namespace qforge {

namespace {
int64_t layer_bytes(const LayerWeights& l) {
  int64_t n = int64_t(l.attn_norm.nbytes() + l.ffn_norm.nbytes());
  for (const Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) n += int64_t(p->weight_bytes() + p->bias.nbytes());
  return n;
}
std::string gib(int64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", double(b) / double(1ll << 30));
  return s;
}
}  // namespace

std::map<std::string, int64_t> parse_max_memory(const std::string& spec) {
  std::map<std::string, int64_t> m;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, ',');) {
    if (part.empty()) continue;
    auto eq = part.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("--max-memory: '" + part + "' is not DEVICE=SIZE (e.g. cuda:0=20GiB,cpu=64GiB)");
    std::string dev = part.substr(0, eq);
    if (dev == "cuda") dev = "cuda:0";
    m[dev] = parse_byte_size(part.substr(eq + 1), "--max-memory");
  }
  return m;
}

std::vector<PlacementSegment> plan_placement(const ModelWeights& w, const ModelConfig& c,
                                             const std::vector<std::string>& devices,
                                             const std::map<std::string, int64_t>& budgets, int64_t kv_positions) {
  if (devices.empty()) throw Error("no device to place the model on");
  const int64_t kv_per_layer = 2 * kv_positions * c.kv_dim() * int64_t(sizeof(float));
  const int64_t embed_bytes = int64_t(w.embed.nbytes());
  const int64_t head_bytes = int64_t(w.final_norm.nbytes() + w.lm_head.weight_bytes());
  // The units to place, in order: embeddings, layers, head.
  struct Unit {
    int kind;  // 0 embed, 1 layer, 2 head
    int64_t layer, bytes;
  };
  std::vector<Unit> units{{0, -1, embed_bytes}};
  int64_t total = embed_bytes + head_bytes;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    int64_t b = layer_bytes(w.layers[size_t(i)]) + kv_per_layer;
    units.push_back({1, i, b});
    total += b;
  }
  units.push_back({2, -1, head_bytes});
  std::vector<PlacementSegment> segs;
  size_t d = 0;
  int64_t used = 0;
  auto budget = [&](size_t i) {
    auto it = budgets.find(devices[i]);
    return it == budgets.end() ? INT64_MAX : it->second;
  };
  const bool tied = !w.lm_head.quantized() && w.lm_head.weight.raw() == w.embed.raw();
  for (Unit u : units) {
    // A tied lm_head costs nothing extra on the device that already holds the embeddings.
    auto cost = [&](size_t dev) {
      if (u.kind == 2 && tied && !segs.empty() && segs.front().device == devices[dev]) return int64_t(w.final_norm.nbytes());
      return u.bytes;
    };
    while (d < devices.size() && used + cost(d) > budget(d)) {
      ++d;
      used = 0;
    }
    if (d == devices.size()) {
      std::string have;
      int64_t sum = 0;
      for (size_t i = 0; i < devices.size(); ++i) {
        have += (i ? ", " : "") + devices[i] + " " + (budget(i) == INT64_MAX ? "unlimited" : gib(budget(i)));
        sum += budget(i) == INT64_MAX ? 0 : budget(i);
      }
      throw Error("out of memory: the model needs " + gib(total) + " (weights + KV cache for " + std::to_string(kv_positions) +
                  " positions) but the devices offer " + have + (sum ? " (" + gib(sum) + ")" : "") +
                  "; try a 4-bit --quant, a smaller context, or more --max-memory");
    }
    if (segs.empty() || segs.back().device != devices[d]) {
      PlacementSegment s;
      s.device = devices[d];
      s.layer_begin = s.layer_end = u.kind == 2 ? c.num_hidden_layers : (u.kind == 1 ? u.layer : 0);
      segs.push_back(s);
    }
    auto& s = segs.back();
    if (u.kind == 0) s.embed = true;
    if (u.kind == 1) s.layer_end = u.layer + 1;
    if (u.kind == 2) s.head = true;
    const int64_t c_here = cost(d);
    s.bytes += c_here;
    used += c_here;
  }
  return segs;
}

}  // namespace qforge
