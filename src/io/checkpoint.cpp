// io/checkpoint.cpp — opens a Hugging Face model directory (config.json + one model.safetensors,
// or shards named by model.safetensors.index.json), validating every shard, and resolves
// "ORG/NAME" repo ids through the local hub cache the way huggingface_hub does offline.
#include "io/checkpoint.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "qforge/status.h"

namespace qforge::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error(p.string() + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw Error(p.string() + ": read failed");
  return ss.str();
}

// Shard names come from a file we do not trust: keep them inside the model directory.
bool safe_relative(const std::string& name) {
  if (name.empty()) return false;
  fs::path p(name);
  if (p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

// Names of *.safetensors files that look like un-indexed shards, for a hint in the error.
std::vector<std::string> stray_shards(const fs::path& dir) {
  static const std::regex shard(R"(model-\d+-of-\d+\.safetensors)");
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    auto n = e.path().filename().string();
    if (std::regex_match(n, shard)) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw Error(dir.string() + ": no such directory");
  if (!fs::is_directory(dir, ec)) throw Error(dir.string() + ": not a directory");
  if (!fs::is_regular_file(dir / "config.json", ec))
    throw Error(dir.string() + ": no config.json (not a Hugging Face model directory)");

  Checkpoint ck;
  ck.dir_ = dir;
  const fs::path index_path = dir / "model.safetensors.index.json";
  const fs::path single_path = dir / "model.safetensors";
  const std::string index_file = index_path.string();

  if (fs::exists(index_path, ec)) {
    json index;
    try {
      index = json::parse(read_text(index_path));
    } catch (const json::parse_error& e) {
      throw Error(index_file + ": not valid JSON (parse error at byte " + std::to_string(e.byte) + ")");
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw Error(index_file + ": no \"weight_map\" object");
    const json& wm = index["weight_map"];
    std::map<std::string, size_t> shard_slot;  // shard name -> index in files_
    std::vector<std::pair<std::string, std::string>> entries;
    for (auto it = wm.begin(); it != wm.end(); ++it) {
      if (!it.value().is_string())
        throw Error(index_file + ": weight_map entry '" + it.key() + "' is not a file name string");
      const auto& shard = it.value().get_ref<const std::string&>();
      if (!safe_relative(shard))
        throw Error(index_file + ": weight_map entry '" + it.key() + "' names '" + shard +
                    "', which is not a file inside the model directory");
      entries.emplace_back(it.key(), shard);
      shard_slot.emplace(shard, 0);
    }
    if (entries.empty()) throw Error(index_file + ": weight_map is empty");
    for (auto& [shard, slot] : shard_slot) {
      fs::path sp = dir / shard;
      if (!fs::exists(sp, ec))
        throw Error(sp.string() + ": missing (named in " + index_path.filename().string() + ")");
      slot = ck.files_.size();
      ck.files_.push_back(SafetensorsFile::open(sp));
    }
    for (const auto& [name, shard] : entries) {
      size_t slot = shard_slot.at(shard);
      if (!ck.files_[slot].find(name))
        throw Error(ck.files_[slot].path().string() + ": tensor '" + name + "' listed in " +
                    index_path.filename().string() + " is not in this shard");
      ck.where_[name] = slot;
    }
    // Tensors a shard holds beyond the index are kept too (transformers loads whole shards),
    // as long as only one shard has them.
    std::map<std::string, size_t> extra;
    for (size_t s = 0; s < ck.files_.size(); ++s)
      for (const auto& [name, info] : ck.files_[s].tensors()) {
        if (ck.where_.count(name)) continue;
        auto [it, inserted] = extra.emplace(name, s);
        if (!inserted)
          throw Error(dir.string() + ": tensor '" + name + "' is in both " +
                      ck.files_[it->second].path().filename().string() + " and " +
                      ck.files_[s].path().filename().string() + " and the index names neither");
      }
    ck.where_.insert(extra.begin(), extra.end());
  } else if (fs::exists(single_path, ec)) {
    ck.files_.push_back(SafetensorsFile::open(single_path));
    for (const auto& [name, info] : ck.files_[0].tensors()) ck.where_[name] = 0;
  } else {
    std::string hint;
    auto stray = stray_shards(dir);
    if (!stray.empty()) hint = " (found " + stray.front() + " but no index naming its tensors)";
    else if (fs::exists(dir / "pytorch_model.bin", ec) || fs::exists(dir / "pytorch_model.bin.index.json", ec))
      hint = " (only PyTorch .bin weights found; convert them to safetensors)";
    throw Error(dir.string() + ": no model.safetensors or model.safetensors.index.json" + hint);
  }
  return ck;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : files_[it->second].find(name);
}

const TensorInfo& Checkpoint::require(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) throw Error(dir_.string() + ": missing tensor '" + name + "'");
  return *info;
}

Tensor Checkpoint::tensor(const std::string& name) const {
  const TensorInfo& info = require(name);
  return files_[where_.at(name)].tensor(info);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, slot] : where_) out.push_back(name);
  return out;
}

size_t Checkpoint::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, slot] : where_) total += files_[slot].find(name)->nbytes;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Hub cache resolution

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// os.path.expanduser for a leading "~" or "~/".
fs::path expand_user(const std::string& p) {
  if (p == "~" || p.rfind("~/", 0) == 0) {
    std::string home = env("HOME");
    if (!home.empty()) return fs::path(home + p.substr(1));
  }
  return fs::path(p);
}

// Same order as huggingface_hub.constants: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub,
// XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. Returns the dir and where it came from.
std::pair<fs::path, std::string> hub_cache_dir() {
  if (auto v = env("HF_HUB_CACHE"); !v.empty()) return {expand_user(v), "$HF_HUB_CACHE"};
  if (auto v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) return {expand_user(v), "$HUGGINGFACE_HUB_CACHE"};
  if (auto v = env("HF_HOME"); !v.empty()) return {expand_user(v) / "hub", "$HF_HOME/hub"};
  if (auto v = env("XDG_CACHE_HOME"); !v.empty())
    return {expand_user(v) / "huggingface" / "hub", "$XDG_CACHE_HOME/huggingface/hub"};
  return {expand_user("~/.cache") / "huggingface" / "hub", "~/.cache/huggingface/hub"};
}

// "NAME" or "ORG/NAME" with the characters the hub allows.
bool valid_repo_id(const std::string& id) {
  static const std::regex re(R"(([A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*)");
  return id.size() <= 200 && std::regex_match(id, re) && id.find("..") == std::string::npos &&
         id.find("--") == std::string::npos;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

fs::path resolve_model_dir(const std::string& arg) {
  std::error_code ec;
  if (fs::is_directory(arg, ec)) return fs::path(arg);
  if (fs::exists(arg, ec)) throw Error(arg + ": not a directory (expected a model directory or ORG/NAME)");

  // Optional "@revision": a branch/tag under refs/ or a commit hash.
  std::string repo = arg, revision = "main";
  if (auto at = arg.find('@'); at != std::string::npos) {
    repo = arg.substr(0, at);
    revision = arg.substr(at + 1);
  }
  static const std::regex rev_re(R"([A-Za-z0-9][A-Za-z0-9._/-]*)");
  if (!valid_repo_id(repo) || !std::regex_match(revision, rev_re) || revision.find("..") != std::string::npos)
    throw Error(arg + ": no such directory, and not a Hugging Face repo id (ORG/NAME)");

  auto [cache, origin] = hub_cache_dir();
  std::string folder = "models--" + repo;
  for (size_t p; (p = folder.find('/')) != std::string::npos;) folder.replace(p, 1, "--");
  const fs::path repo_dir = cache / folder;
  const std::string looked = " (looked for " + repo_dir.string() + ", cache from " + origin + ")";
  if (!fs::is_directory(repo_dir, ec))
    throw Error(arg + ": no such directory, and not in the Hugging Face cache" + looked);

  std::string commit = revision;
  const fs::path ref = repo_dir / "refs" / revision;
  if (fs::is_regular_file(ref, ec)) {
    commit = trim(read_text(ref));
    if (commit.empty() || !std::regex_match(commit, rev_re) || commit.find("..") != std::string::npos)
      throw Error(ref.string() + ": does not hold a commit hash");
  }
  const fs::path snap = repo_dir / "snapshots" / commit;
  if (!fs::is_directory(snap, ec))
    throw Error(arg + ": revision '" + revision + "' is not in the Hugging Face cache (looked for " + ref.string() +
                " and " + snap.string() + ")");
  return snap;
}

}  // namespace qforge::io
