// tokenizer/streaming_decoder.cpp — StreamingDecoder: re-decodes the ids seen so far and returns
// only the new part of the prefix that no later id can change, so the pieces always concatenate
// to decode(all ids) and never split a UTF-8 character.
#include "qforge/tokenizer.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/pipeline.h"

namespace qforge {

StreamingDecoder::StreamingDecoder(const Tokenizer& tok, bool skip_special) : tok_(tok), skip_special_(skip_special) {}

std::string StreamingDecoder::stable_text() const {
  const auto* hf = dynamic_cast<const tok::HfTokenizer*>(&tok_);
  if (!hf) {  // another implementation: hold back only a trailing replacement character
    std::string text = tok_.decode(ids_, skip_special_);
    while (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) text.resize(text.size() - 3);
    return text;
  }
  // 1. A trailing run of <0xNN> tokens (ignoring ids that decode drops) is decoded all-or-nothing
  //    once a normal token closes it, so hold it back entirely.
  size_t keep = ids_.size();
  for (size_t k = ids_.size(); k > 0; --k) {
    int32_t id = ids_[k - 1];
    if (hf->is_byte_fallback_token(id)) keep = k - 1;
    else if (!(skip_special_ && hf->is_special(id)) && !hf->id_to_token(id).empty()) break;
  }
  std::string raw = hf->decode_raw(std::span(ids_).first(keep), skip_special_);
  // 2. Byte-level decoders show an incomplete character as U+FFFD; more bytes may complete it.
  while (raw.size() >= 3 && raw.compare(raw.size() - 3, 3, "\xEF\xBF\xBD") == 0) raw.resize(raw.size() - 3);
  if (!hf->cleanup_spaces()) return raw;
  // 3. clean_up_tokenization_spaces rewrites " ." " n't" " ' " ...: every rule starts at a space, so
  //    cut before the last space (and before " '" whose rule " ' " would span the cut).
  size_t cut = raw.rfind(' ');
  if (cut == std::string::npos) return "";  // no space yet: nothing is final
  while (cut >= 2 && raw.compare(cut - 2, 2, " '") == 0) cut -= 2;
  return tok::cleanup_tokenization_spaces(raw.substr(0, cut));
}

std::string StreamingDecoder::push(int32_t id) {
  ids_.push_back(id);
  std::string stable = stable_text();
  if (stable.size() <= emitted_) return "";
  std::string out = stable.substr(emitted_);
  emitted_ = stable.size();
  return out;
}

std::string StreamingDecoder::finish() {
  std::string text = tok_.decode(ids_, skip_special_);
  std::string out = emitted_ < text.size() ? text.substr(emitted_) : std::string();
  emitted_ = text.size();
  return out;
}

}  // namespace qforge
