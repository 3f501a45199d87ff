// tests/unit/checkpoint_test.cpp — model directories: the bundled sharded demo checkpoint, a
// single-file one, every broken layout (missing config/shard/tensor, bad index, truncated
// shard) naming the file, and repo-id resolution through a fake Hugging Face hub cache.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "io/checkpoint.h"
#include "qforge/status.h"
#include "test_support.h"

namespace qforge::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// Runs f, expecting a qforge::Error whose message contains every needle.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nexpected: " << n;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// A copy of the demo model directory; shards are symlinked unless `copy_shards`.
fs::path demo_copy(const std::string& tag, bool copy_shards = false) {
  auto dst = test::temp_dir(tag) / "model";
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(test::demo_model_dir())) {
    auto name = e.path().filename();
    if (name.extension() == ".safetensors" && !copy_shards) fs::create_symlink(fs::absolute(e.path()), dst / name);
    else fs::copy_file(e.path(), dst / name);
  }
  return dst;
}

TEST(Checkpoint, OpensDemoModel) {
  auto ck = Checkpoint::open(test::demo_model_dir());
  auto index = json::parse(test::read_file(test::demo_model_dir() / "model.safetensors.index.json"));
  std::vector<std::string> listed;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) listed.push_back(it.key());
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed.size(), 56u);  // 6 layers x 9 + embed_tokens + norm (tied: no lm_head)
  EXPECT_EQ(ck.names(), listed);
  EXPECT_EQ(ck.find("lm_head.weight"), nullptr);  // tied embeddings
  EXPECT_EQ(ck.total_bytes(), index["metadata"]["total_size"].get<size_t>());
  const TensorInfo& emb = ck.require("model.embed_tokens.weight");
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{32000, 288}));
  EXPECT_NE(emb.file.find("model-00001-of-00002.safetensors"), std::string::npos);
  // GQA: 6 heads x 48, 2 kv heads x 48.
  EXPECT_EQ(ck.require("model.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{288, 288}));
  EXPECT_EQ(ck.require("model.layers.5.self_attn.k_proj.weight").shape, (std::vector<int64_t>{96, 288}));
  Tensor t = ck.tensor("model.norm.weight");
  EXPECT_EQ(t.dtype(), DType::BF16);
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{288}));
  EXPECT_EQ(t.raw(), static_cast<const void*>(ck.find("model.norm.weight")->data));
  expect_error([&] { ck.require("lm_head.weight"); }, {"missing tensor 'lm_head.weight'", "kjv-llama-14m"});
  expect_error([&] { ck.tensor("nope"); }, {"missing tensor 'nope'"});
}

TEST(Checkpoint, OpensSingleFileModel) {
  auto dir = test::temp_dir("ck-single");
  write_text(dir / "config.json", "{}");
  float w[6] = {1, 2, 3, 4, 5, 6};
  write_safetensors(dir / "model.safetensors", {{"w", DType::F32, {2, 3}, w, sizeof w}});
  auto ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.names(), std::vector<std::string>{"w"});
  EXPECT_EQ(ck.total_bytes(), sizeof w);
  EXPECT_EQ(std::memcmp(ck.tensor("w").raw(), w, sizeof w), 0);
}

TEST(Checkpoint, MissingConfigOrWeights) {
  auto dir = test::temp_dir("ck-missing");
  expect_error([&] { Checkpoint::open(dir / "absent"); }, {"absent", "no such directory"});
  expect_error([&] { Checkpoint::open(dir); }, {dir.string(), "no config.json"});
  write_text(dir / "config.json", "{}");
  expect_error([&] { Checkpoint::open(dir); }, {dir.string() + ": no model.safetensors or model.safetensors.index.json"});
  write_text(dir / "model-00001-of-00002.safetensors", "");
  expect_error([&] { Checkpoint::open(dir); }, {"found model-00001-of-00002.safetensors but no index"});
}

TEST(Checkpoint, MissingShard) {
  auto dir = demo_copy("ck-noshard");
  fs::remove(dir / "model-00002-of-00002.safetensors");
  expect_error([&] { Checkpoint::open(dir); },
               {(dir / "model-00002-of-00002.safetensors").string(), "missing", "model.safetensors.index.json"});
}

TEST(Checkpoint, TensorMissingFromItsShard) {
  auto dir = demo_copy("ck-notensor");
  auto index = json::parse(test::read_file(dir / "model.safetensors.index.json"));
  index["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors";
  write_text(dir / "model.safetensors.index.json", index.dump(2));
  expect_error([&] { Checkpoint::open(dir); },
               {"model-00001-of-00002.safetensors", "tensor 'lm_head.weight'", "not in this shard"});
  // The index pointing a real tensor to the wrong shard is the same error.
  index["weight_map"].erase("lm_head.weight");
  index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  write_text(dir / "model.safetensors.index.json", index.dump(2));
  expect_error([&] { Checkpoint::open(dir); }, {"model-00001-of-00002.safetensors", "'model.norm.weight'"});
}

TEST(Checkpoint, BadIndex) {
  auto dir = demo_copy("ck-badindex");
  auto idx = dir / "model.safetensors.index.json";
  write_text(idx, "{\"weight_map\": {");
  expect_error([&] { Checkpoint::open(dir); }, {idx.string(), "not valid JSON"});
  write_text(idx, "{\"metadata\": {}}");
  expect_error([&] { Checkpoint::open(dir); }, {idx.string(), "weight_map"});
  write_text(idx, R"({"weight_map": {"a": 3}})");
  expect_error([&] { Checkpoint::open(dir); }, {idx.string(), "'a'"});
  write_text(idx, R"({"weight_map": {"a": "../../etc/passwd"}})");
  expect_error([&] { Checkpoint::open(dir); }, {idx.string(), "not a file inside the model directory"});
  write_text(idx, R"({"weight_map": {}})");
  expect_error([&] { Checkpoint::open(dir); }, {idx.string(), "empty"});
}

TEST(Checkpoint, TruncatedShardNamesTheFile) {
  auto dir = demo_copy("ck-trunc", /*copy_shards=*/true);
  auto shard = dir / "model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  expect_error([&] { Checkpoint::open(dir); }, {shard.string() + ": tensor '", "run past the end of the data"});
}

TEST(Checkpoint, UnindexedTensorInTwoShards) {
  auto dir = test::temp_dir("ck-dup");
  write_text(dir / "config.json", "{}");
  float w[2] = {1, 2};
  write_safetensors(dir / "s1.safetensors", {{"w", DType::F32, {2}, w, 8}, {"x", DType::F32, {2}, w, 8}});
  write_safetensors(dir / "s2.safetensors", {{"x", DType::F32, {2}, w, 8}});
  write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"w": "s1.safetensors", "y": "s2.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir); }, {"s2.safetensors", "'y'"});
  write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"w": "s1.safetensors", "x": "s2.safetensors"}})");
  auto ck = Checkpoint::open(dir);  // the index decides where "x" lives
  EXPECT_NE(ck.require("x").file.find("s2.safetensors"), std::string::npos);
  write_safetensors(dir / "s2.safetensors", {{"x", DType::F32, {2}, w, 8}, {"z", DType::F32, {2}, w, 8}});
  write_safetensors(dir / "s1.safetensors", {{"w", DType::F32, {2}, w, 8}, {"z", DType::F32, {2}, w, 8}});
  expect_error([&] { Checkpoint::open(dir); }, {"tensor 'z' is in both"});
}

// Sets/clears environment variables for one test and restores them afterwards.
class EnvGuard {
 public:
  explicit EnvGuard(std::initializer_list<const char*> names) {
    for (const char* n : names) {
      const char* v = std::getenv(n);
      saved_.emplace_back(n, v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(n);
    }
  }
  ~EnvGuard() {
    for (auto& [n, v] : saved_) {
      if (v) setenv(n.c_str(), v->c_str(), 1);
      else unsetenv(n.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// A fake cache entry: <hub>/models--ORG--NAME/{refs/main, snapshots/<rev>/config.json}.
fs::path fake_repo(const fs::path& hub, const std::string& folder, const std::string& rev) {
  auto repo = hub / folder;
  write_text(repo / "refs" / "main", rev + "\n");
  write_text(repo / "snapshots" / rev / "config.json", "{}");
  return repo / "snapshots" / rev;
}

TEST(ResolveModelDir, ExistingDirectory) {
  auto d = test::demo_model_dir();
  EXPECT_EQ(resolve_model_dir(d.string()), d);
  auto file = d / "config.json";
  expect_error([&] { resolve_model_dir(file.string()); }, {file.string(), "not a directory"});
}

TEST(ResolveModelDir, HubCacheFromEnvironment) {
  EnvGuard env({"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"});
  auto root = test::temp_dir("hub");
  const std::string rev = "0123456789abcdef0123456789abcdef01234567";

  // $HF_HOME/hub
  setenv("HF_HOME", (root / "hf-home").c_str(), 1);
  auto snap = fake_repo(root / "hf-home" / "hub", "models--TinyOrg--tiny-model", rev);
  EXPECT_EQ(resolve_model_dir("TinyOrg/tiny-model"), snap);
  EXPECT_EQ(resolve_model_dir("TinyOrg/tiny-model@" + rev), snap);  // a commit hash
  write_text(root / "hf-home" / "hub" / "models--TinyOrg--tiny-model" / "refs" / "v1", rev);
  EXPECT_EQ(resolve_model_dir("TinyOrg/tiny-model@v1"), snap);  // a branch/tag under refs/
  // Repo without an organisation.
  auto snap2 = fake_repo(root / "hf-home" / "hub", "models--gpt2", rev);
  EXPECT_EQ(resolve_model_dir("gpt2"), snap2);

  // $HF_HUB_CACHE wins over $HF_HOME.
  auto snap3 = fake_repo(root / "direct", "models--TinyOrg--tiny-model", rev);
  setenv("HF_HUB_CACHE", (root / "direct").c_str(), 1);
  EXPECT_EQ(resolve_model_dir("TinyOrg/tiny-model"), snap3);
  unsetenv("HF_HUB_CACHE");
  setenv("HUGGINGFACE_HUB_CACHE", (root / "direct").c_str(), 1);  // the legacy name
  EXPECT_EQ(resolve_model_dir("TinyOrg/tiny-model"), snap3);
  unsetenv("HUGGINGFACE_HUB_CACHE");

  // Without HF_HOME: $XDG_CACHE_HOME/huggingface/hub, then ~/.cache/huggingface/hub.
  unsetenv("HF_HOME");
  setenv("XDG_CACHE_HOME", (root / "xdg").c_str(), 1);
  auto snap4 = fake_repo(root / "xdg" / "huggingface" / "hub", "models--A--b", rev);
  EXPECT_EQ(resolve_model_dir("A/b"), snap4);
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", (root / "home").c_str(), 1);
  auto snap5 = fake_repo(root / "home" / ".cache" / "huggingface" / "hub", "models--A--b", rev);
  EXPECT_EQ(resolve_model_dir("A/b"), snap5);
}

TEST(ResolveModelDir, ErrorsSayWhereTheyLooked) {
  EnvGuard env({"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"});
  auto root = test::temp_dir("hub-err");
  setenv("HF_HOME", root.c_str(), 1);
  expect_error([&] { resolve_model_dir("Org/absent"); },
               {"Org/absent", (root / "hub" / "models--Org--absent").string(), "$HF_HOME/hub"});
  // refs/main names a snapshot that is not there.
  write_text(root / "hub" / "models--Org--half" / "refs" / "main", "deadbeef");
  expect_error([&] { resolve_model_dir("Org/half"); },
               {"revision 'main'", (root / "hub" / "models--Org--half" / "snapshots" / "deadbeef").string()});
  // No refs/main at all.
  fs::create_directories(root / "hub" / "models--Org--norefs" / "snapshots" / "abc");
  expect_error([&] { resolve_model_dir("Org/norefs"); }, {"refs/main"});
  // Not a repo id.
  for (std::string bad : {"a/b/c", "../x", "Org/../../etc", "", "Org/na--me", "/abs/path/missing"})
    expect_error([&] { resolve_model_dir(bad); }, {"not a Hugging Face repo id"});
}

}  // namespace
}  // namespace qforge::io
