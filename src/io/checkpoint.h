// io/checkpoint.h — a Hugging Face model directory: config.json plus model.safetensors or
// sharded model-*.safetensors with model.safetensors.index.json. Every shard the index names is
// opened and validated; each tensor name resolves to exactly one shard.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace qforge::io {

class Checkpoint {
 public:
  // `dir` is a model directory. Throws qforge::Error naming the missing/corrupt file.
  static Checkpoint open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  // Like find, but throws "<dir>: missing tensor 'name'".
  const TensorInfo& require(const std::string& name) const;
  Tensor tensor(const std::string& name) const;  // view (mapping kept alive)
  std::vector<std::string> names() const;
  size_t total_bytes() const;

 private:
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

// Resolve a user argument to a model directory: an existing directory is used as is; otherwise
// "ORG/NAME" resolves through the local Hugging Face hub cache the way from_pretrained does
// offline: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; then
// models--ORG--NAME/snapshots/<refs/main>/. Throws naming what was looked for.
std::filesystem::path resolve_model_dir(const std::string& path_or_repo_id);

}  // namespace qforge::io
