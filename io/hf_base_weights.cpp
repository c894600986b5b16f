// The copy walks the file in the order it is laid out: for a Conv1D weight stored [in, out]
// one file row (one input feature) at a time, taking from it only this rank's output
// columns (column-parallel layers) or only this rank's rows (row-parallel layers), so every
// byte read is a byte of the rank's shard. Values are widened to float, checked finite,
// then stored in the layout's type.
#include "io/hf_base_weights.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "io/hf_bnb_weights.h"
#include "io/hf_model_folder.h"
#include "io/first_process.h"
#include "io/input_error.h"

namespace lora {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kReleaseEvery = uint64_t(4) << 20;  // bytes of a tensor copied between releases

// The distinct 4 KiB pages of each weight file that the copies read.
class PageSet {
 public:
  void mark(const SafetensorsFile& f, uint64_t data_offset, uint64_t bytes) {
    if (bytes == 0) return;
    std::vector<bool>& bits = pages_[&f];
    if (bits.empty()) bits.resize((f.file_size() + kPage - 1) / kPage);
    const uint64_t first = f.data_start() + data_offset;
    for (uint64_t p = first / kPage; p <= (first + bytes - 1) / kPage; ++p) bits[p] = true;
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (const auto& kv : pages_)
      for (bool b : kv.second) n += b;
    return n;
  }

 private:
  std::map<const SafetensorsFile*, std::vector<bool>> pages_;
};

std::string dims_str(const std::vector<uint64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// The shape the file must give tensor s: [in, out] for a Conv1D weight, [n] for a vector.
std::vector<uint64_t> expected_shape(const TensorSpec& s, bool transposed) {
  if (s.rows == 1 || s.cols == 1) return {uint64_t(s.rows) * uint64_t(s.cols)};
  return transposed ? std::vector<uint64_t>{uint64_t(s.cols), uint64_t(s.rows)}
                    : std::vector<uint64_t>{uint64_t(s.rows), uint64_t(s.cols)};
}

// Where this rank's values go: the model-type buffer or, for a BF16 tensor, the bf16 one, or
// for an NF4 tensor an fp32 staging copy of its rows.
template <typename T>
struct Sink {
  T* native = nullptr;
  uint16_t* bf16 = nullptr;
  float* f32 = nullptr;
  void put(size_t i, float v) const {
    if (bf16) bf16[i] = float_to_bf16(v);
    else if (f32) f32[i] = v;
    else native[i] = static_cast<T>(v);
  }
};

// Copies TP rank `tp_rank`'s slice of tensor s from `src` into `out` (local [lr, lc] =
// logical [global_row, global_col], padding rows zero) and returns the index of the first
// non-finite value copied, or -1.
template <typename T>
int64_t copy_rank_slice(const HfTensorRef& ref, const TensorSpec& s, bool transposed, int tp_rank, const Sink<T>& out,
                        PageSet& pages, uint64_t& bytes) {
  const SafetensorsTensor& t = *ref.tensor;
  const uint64_t eb = st_dtype_bytes(t.dtype);
  int64_t bad = -1;
  auto take = [&](size_t dst, uint64_t k) {
    const float v = st_element(t, k);
    if (!std::isfinite(v) && bad < 0) bad = static_cast<int64_t>(k);
    out.put(dst, v);
  };
  for (int lr = 0; lr < s.local_rows; ++lr)  // padding rows (beyond the vocabulary) are zero
    if (s.global_row(lr, tp_rank) >= s.rows)
      for (int lc = 0; lc < s.local_cols; ++lc) out.put(size_t(lr) * s.local_cols + lc, 0.0f);
  // Runs of local rows whose global rows are consecutive (one for Rows/Cols, one per block for BlockRows).
  std::vector<std::pair<int, int>> runs;  // (first local row, length)
  for (int lr = 0; lr < s.local_rows;) {
    const int row0 = s.global_row(lr, tp_rank);
    if (row0 >= s.rows) break;
    int n = 1;
    while (lr + n < s.local_rows && s.global_row(lr + n, tp_rank) == row0 + n && row0 + n < s.rows) ++n;
    runs.emplace_back(lr, n);
    lr += n;
  }
  const uint64_t rows = uint64_t(s.rows), cols = uint64_t(s.cols);
  if (!transposed) {  // [out, in] as the layout: each local row is part of one file row
    const uint64_t c0 = uint64_t(s.global_col(0, tp_rank));
    for (const auto& [lr0, n] : runs) {
      // The token embedding is the largest tensor (half of GPT-2 124M's at tp 2 is 77 MiB): its pages
      // leave the resident set every few MiB rather than at the end.
      uint64_t unreleased = uint64_t(s.global_row(lr0, tp_rank)) * cols * eb;  // byte offset in t
      for (int k = 0; k < n; ++k) {
        const uint64_t first = uint64_t(s.global_row(lr0 + k, tp_rank)) * cols + c0;
        for (int lc = 0; lc < s.local_cols; ++lc) take(size_t(lr0 + k) * s.local_cols + lc, first + lc);
        pages.mark(*ref.file, t.begin + first * eb, uint64_t(s.local_cols) * eb);
        bytes += uint64_t(s.local_cols) * eb;
        const uint64_t done = (first + uint64_t(s.local_cols)) * eb;
        if (done - unreleased >= kReleaseEvery) {
          ref.file->release(t.data + unreleased, done - unreleased);
          unreleased = done;
        }
      }
    }
  } else {  // Conv1D [in, out]: file row i holds input feature i of every output
    for (int lc = 0; lc < s.local_cols; ++lc) {
      const uint64_t i = uint64_t(s.global_col(lc, tp_rank));
      for (const auto& [lr0, n] : runs) {
        const uint64_t first = i * rows + uint64_t(s.global_row(lr0, tp_rank));
        for (int k = 0; k < n; ++k) take(size_t(lr0 + k) * s.local_cols + lc, first + k);
        pages.mark(*ref.file, t.begin + first * eb, uint64_t(n) * eb);
        bytes += uint64_t(n) * eb;
      }
    }
  }
  return bad;
}

// The prefix of a layer's tensors in the folder: "h." (GPT-2) or "model.layers." (Llama).
const char* layer_prefix(const std::string& arch) { return arch == "gpt" ? "h." : "model.layers."; }

// Layers of the folder beyond config.json's n_layer mean the two disagree.
void check_no_extra_layers(const HfModelFolder& folder, const ParamLayout& layout, const std::string& arch) {
  int n_layer = 0;
  while (layout.find("h." + std::to_string(n_layer) + ".ln_1.weight")) ++n_layer;
  const std::string prefix = layer_prefix(arch);
  for (const auto& [name, ref] : folder.tensors()) {
    if (name.rfind(prefix, 0) != 0) continue;
    const int l = std::atoi(name.c_str() + prefix.size());
    if (l >= n_layer)
      throw InputError(ref.file->path() + ": tensor '" + ref.stored_name + "' is of layer " + std::to_string(l) +
                       ", but config.json gives n_layer = " + std::to_string(n_layer));
  }
}

// Buffers a folder may store that are not weights: GPT-2's causal masks, the RoPE inverse
// frequencies of older Llama checkpoints (recomputed from config.json).
bool is_ignored_buffer(const std::string& name) {
  auto ends_with = [&](const char* suffix) {
    const size_t n = std::strlen(suffix);
    return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
  };
  return (name.rfind("h.", 0) == 0 && (ends_with(".attn.bias") || ends_with(".attn.masked_bias"))) ||
         ends_with(".rotary_emb.inv_freq");
}

// GPT-2's names: lora_dist's are GPT-2's with the linear layers renamed (Conv1D, [in, out]).
HfSource gpt2_source(const std::string& name) {
  if (name == "wte" || name == "wpe") return {{name + ".weight"}, false};
  static const std::pair<const char*, const char*> kLinear[] = {
      {"attn.qkv.", "attn.c_attn."}, {"attn.proj.", "attn.c_proj."}, {"mlp.fc.", "mlp.c_fc."}, {"mlp.proj.", "mlp.c_proj."}};
  for (const auto& [ours, theirs] : kLinear) {
    const size_t at = name.find(ours);
    if (at == std::string::npos) continue;
    const std::string rest = name.substr(at + std::strlen(ours));
    return {{name.substr(0, at) + theirs + rest}, rest == "weight"};
  }
  return {{name}, false};  // ln_1, ln_2, ln_f: the same names
}

// LlamaForCausalLM's names (Mistral's and Qwen2's are the same).
HfSource llama_source(const std::string& name) {
  if (name == "wte") return {{"model.embed_tokens.weight"}, false};
  if (name == "lm_head") return {{"lm_head.weight"}, false};
  if (name == "ln_f.weight") return {{"model.norm.weight"}, false};
  const size_t dot = name.find('.', 2);  // "h.N." -> "model.layers.N."
  const std::string layer = "model.layers." + name.substr(2, dot - 2) + ".", part = name.substr(dot + 1);
  const size_t last = part.rfind('.');
  const std::string module = part.substr(0, last), kind = part.substr(last);  // ".weight" or ".bias"
  if (module == "ln_1") return {{layer + "input_layernorm" + kind}, false};
  if (module == "ln_2") return {{layer + "post_attention_layernorm" + kind}, false};
  if (module == "attn.qkv")
    return {{layer + "self_attn.q_proj" + kind, layer + "self_attn.k_proj" + kind, layer + "self_attn.v_proj" + kind}, false};
  if (module == "attn.proj") return {{layer + "self_attn.o_proj" + kind}, false};
  if (module == "mlp.fc") return {{layer + "mlp.gate_proj" + kind, layer + "mlp.up_proj" + kind}, false};
  if (module == "mlp.proj") return {{layer + "mlp.down_proj" + kind}, false};
  throw std::logic_error("llama_source: no Hugging Face name for '" + name + "'");
}

}  // namespace

HfSource hf_source(const std::string& name, const std::string& arch) {
  return arch == "gpt" ? gpt2_source(name) : llama_source(name);
}

namespace {

// The TP slice of one stacked block of a BlockRows tensor, as a Rows tensor of its own.
TensorSpec block_of(const TensorSpec& s, size_t b, int* local_row0) {
  TensorSpec part = s;
  part.shard = Shard::Rows;
  part.blocks.clear();
  part.rows = s.blocks[b];
  part.local_rows = s.local_block_rows(b);
  *local_row0 = 0;
  for (size_t k = 0; k < b; ++k) *local_row0 += s.local_block_rows(k);
  return part;
}

}  // namespace

template <typename T>
HfReadStats read_hf_base_weights(const std::string& dir, const ParamLayout& layout, int tp_rank, T* buffer,
                                 uint16_t* bf16_buffer, const std::string& arch, Nf4Staging* nf4) {
  if (layout.total_bf16 > 0 && !bf16_buffer)
    throw std::logic_error("read_hf_base_weights: the layout has bf16 tensors but no bf16 buffer was given");
  if (layout.total_nf4 > 0 && !nf4) throw std::logic_error("read_hf_base_weights: the layout has NF4 tensors but no staging");
  const HfModelFolder folder(dir);
  check_no_extra_layers(folder, layout, arch);
  const char* family = arch == "gpt" ? "GPT-2" : "Llama-family";
  HfReadStats stats;
  for (const auto& f : folder.files()) stats.file_bytes += f->file_size();
  PageSet pages;
  std::set<std::string> dtypes;
  std::set<std::string> used;
  std::vector<float> staged;  // an NF4 tensor's rows in fp32, quantized once all its parts are read
  for (const TensorSpec& whole : layout.tensors) {
    const HfSource src = hf_source(whole.name, arch);
    if (whole.dtype == DType::NF4 && is_bnb_4bit(folder, src.names[0])) {  // quantized already: copied as it is
      std::vector<float> offsets;
      std::vector<std::string> companions;
      uint8_t* shard = nf4->bytes + whole.offset;
      for (size_t b = 0; b < src.names.size(); ++b) {
        if (!is_bnb_4bit(folder, src.names[b]))
          throw InputError(folder.source() + ": '" + src.names[0] + "' is a bitsandbytes 4-bit weight but '" +
                           src.names[b] + "', fused with it, is not");
        offsets.push_back(read_bnb_nf4_segment(folder, src.names[b], whole, b, tp_rank, shard, companions));
        used.insert(src.names[b]);
      }
      used.insert(companions.begin(), companions.end());
      nf4_write_row_table(whole, tp_rank, offsets, shard);
      dtypes.insert("NF4");
      stats.bytes_read += whole.nf4.bytes;
      continue;
    }
    if (whole.dtype == DType::NF4) staged.assign(whole.local_size(), 0.0f);
    for (size_t b = 0; b < src.names.size(); ++b) {  // one part, or each stacked block of a fused tensor
      int local_row0 = 0;
      const TensorSpec s = src.names.size() > 1 ? block_of(whole, b, &local_row0) : whole;
      const std::string& hf = src.names[b];
      const HfTensorRef* ref = folder.find(hf);
      const std::vector<uint64_t> want = expected_shape(s, src.transposed);
      if (!ref)
        throw InputError(folder.source() + ": no tensor '" + hf + "'" + (arch == "gpt" ? " (or 'transformer." + hf + "')" : "") +
                         " of shape " + dims_str(want) + ", which config.json's " + family + " model needs");
      used.insert(hf);
      const SafetensorsTensor& t = *ref->tensor;
      const std::string what = ref->file->path() + ": tensor '" + ref->stored_name + "'";
      if (is_bnb_4bit(folder, hf))
        throw InputError(what + " is a bitsandbytes 4-bit (NF4) weight: set model.dtype: nf4 to train on this folder");
      if (t.dtype != StDtype::F32 && t.dtype != StDtype::F16 && t.dtype != StDtype::BF16)
        throw InputError(what + " has dtype " + st_dtype_name(t.dtype) + "; base weights must be F32, F16 or BF16");
      if (t.shape != want)
        throw InputError(what + " has shape " + t.shape_str() + ", but config.json's model needs " + dims_str(want));
      dtypes.insert(st_dtype_name(t.dtype));
      const size_t at = whole.offset + size_t(local_row0) * whole.local_cols;
      Sink<T> sink;
      if (whole.dtype == DType::BF16) sink.bf16 = bf16_buffer + at;
      else if (whole.dtype == DType::NF4) sink.f32 = staged.data() + size_t(local_row0) * whole.local_cols;
      else sink.native = buffer + at;
      const int64_t bad = copy_rank_slice(*ref, s, src.transposed, tp_rank, sink, pages, stats.bytes_read);
      ref->file->release(t);
      if (bad >= 0)
        throw InputError(what + " holds a non-finite value (" + std::to_string(st_element(t, uint64_t(bad))) +
                         ") at element " + std::to_string(bad) + " of " + std::to_string(t.elements()) +
                         "; refusing to train on it");
    }
    if (whole.dtype == DType::NF4) nf4->quantize(whole, staged.data());
  }
  // A tied model (GPT2LMHeadModel; a Llama folder with tie_word_embeddings) has no head of
  // its own; a file that stores one anyway must store the embedding's values. Each rank
  // checks its own vocabulary rows.
  const std::string embedding = hf_source("wte", arch).names[0];
  const HfTensorRef* head = layout.find("lm_head") ? nullptr : folder.find("lm_head.weight");
  if (head) {
    used.insert("lm_head.weight");
    const TensorSpec& wte = layout.at("wte");
    const SafetensorsTensor& t = *head->tensor;
    const std::string what = head->file->path() + ": tensor '" + head->stored_name + "'";
    if (t.shape != expected_shape(wte, false))
      throw InputError(what + " has shape " + t.shape_str() + "; a tied LM head has the embedding's " + dims_str(expected_shape(wte, false)));
    if (t.dtype != StDtype::F32 && t.dtype != StDtype::F16 && t.dtype != StDtype::BF16)
      throw InputError(what + " has dtype " + st_dtype_name(t.dtype) + "; base weights must be F32, F16 or BF16");
    const HfTensorRef& wref = *folder.find(embedding);
    for (int lr = 0; lr < wte.local_rows; ++lr) {
      const uint64_t row = uint64_t(wte.global_row(lr, tp_rank));
      if (row >= uint64_t(wte.rows)) break;
      for (uint64_t c = 0; c < uint64_t(wte.cols); ++c) {
        const uint64_t k = row * wte.cols + c;
        if (st_element(t, k) != st_element(*wref.tensor, k))
          throw InputError(what + " differs from " + embedding + " at row " + std::to_string(row) + ", column " +
                           std::to_string(c) + ": config.json ties the LM head to the token embedding "
                           "(tie_word_embeddings), so an untied head cannot be loaded");
      }
      pages.mark(*head->file, t.begin + row * wte.cols * st_dtype_bytes(t.dtype), wte.cols * st_dtype_bytes(t.dtype));
      stats.bytes_read += wte.cols * st_dtype_bytes(t.dtype);
    }
    head->file->release(t);
    wref.file->release(*wref.tensor);
  }
  std::vector<std::string> ignored;
  for (const auto& kv : folder.tensors())
    if (!used.count(kv.first) && !is_ignored_buffer(kv.first)) ignored.push_back(kv.second.stored_name);
  if (!ignored.empty() && tp_rank == 0 && is_first_process()) {
    std::string names;
    for (size_t i = 0; i < ignored.size() && i < 6; ++i) names += (i ? ", " : "") + ignored[i];
    if (ignored.size() > 6) names += ", ...";
    std::fprintf(stderr, "lora_dist: note: %s: %zu tensor(s) that the %s language model does not use, ignored: %s\n",
                 dir.c_str(), ignored.size(), family, names.c_str());
  }
  for (const std::string& d : dtypes) stats.dtypes += (stats.dtypes.empty() ? "" : "+") + d;
  stats.pages_touched = pages.count();
  return stats;
}

template HfReadStats read_hf_base_weights<float>(const std::string&, const ParamLayout&, int, float*, uint16_t*, const std::string&, Nf4Staging*);
template HfReadStats read_hf_base_weights<double>(const std::string&, const ParamLayout&, int, double*, uint16_t*, const std::string&, Nf4Staging*);

}  // namespace lora
