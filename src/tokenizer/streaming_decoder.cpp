// tokenizer/streaming_decoder.cpp — StreamingDecoder: re-decodes the ids seen so far and returns
// only the stable new suffix, so the pieces always concatenate to decode(all ids).
#include "qforge/tokenizer.h"
#include "tokenizer/hf_tokenizer.h"

namespace qforge {

StreamingDecoder::StreamingDecoder(const Tokenizer& tok, bool skip_special) : tok_(tok), skip_special_(skip_special) {}

namespace {
bool ends_with_replacement(const std::string& s, size_t end) {
  return end >= 3 && s.compare(end - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

size_t StreamingDecoder::stable_bytes(const std::string& text) const {
  const auto* hf = dynamic_cast<const tok::HfTokenizer*>(&tok_);
  size_t stable = text.size();
  // A trailing run of <0xNN> tokens is decoded all-or-nothing once the run is closed.
  size_t k = 0;
  while (hf && k < ids_.size() && hf->is_byte_fallback_token(ids_[ids_.size() - 1 - k])) ++k;
  if (k > 0) {
    std::string head = tok_.decode(std::span(ids_).first(ids_.size() - k), skip_special_);
    stable = text.compare(0, head.size(), head) == 0 ? head.size() : emitted_;
  }
  // Byte-level decoders turn an incomplete character into U+FFFD; the next bytes may complete it.
  while (ends_with_replacement(text, stable)) stable -= 3;
  // clean_up_tokenization_spaces may still delete a trailing space (" ." -> ".", " n't" -> "n't").
  if (!hf || hf->cleanup_spaces()) {
    size_t sp = text.rfind(' ', stable == 0 ? 0 : stable - 1);
    if (sp != std::string::npos && stable > 0) {
      std::string_view tail(text.data() + sp + 1, stable - sp - 1);
      for (std::string_view rule : {".", "?", "!", ",", "' ", "n't", "'m", "'s", "'ve", "'re"}) {
        if (tail.size() < rule.size() && rule.substr(0, tail.size()) == tail) {
          stable = sp;
          break;
        }
      }
    }
  }
  return std::max(stable, emitted_);
}

std::string StreamingDecoder::push(int32_t id) {
  ids_.push_back(id);
  std::string text = tok_.decode(ids_, skip_special_);
  size_t stable = std::min(stable_bytes(text), text.size());
  if (stable <= emitted_) return "";
  std::string out = text.substr(emitted_, stable - emitted_);
  emitted_ = stable;
  return out;
}

std::string StreamingDecoder::finish() {
  std::string text = tok_.decode(ids_, skip_special_);
  std::string out = emitted_ < text.size() ? text.substr(emitted_) : std::string();
  emitted_ = text.size();
  return out;
}

}  // namespace qforge
