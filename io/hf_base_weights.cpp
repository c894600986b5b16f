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

// Where this rank's values go: the model-type buffer or, for a BF16 tensor, the bf16 one.
template <typename T>
struct Sink {
  T* native = nullptr;
  uint16_t* bf16 = nullptr;
  void put(size_t i, float v) const {
    if (bf16) bf16[i] = float_to_bf16(v);
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
  // Runs of local rows whose global rows are consecutive (one for Rows/Cols, three for QkvRows).
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

// Layers "h.N." of the folder beyond config.json's n_layer mean the two disagree.
void check_no_extra_layers(const HfModelFolder& folder, const ParamLayout& layout) {
  int n_layer = 0;
  while (layout.find("h." + std::to_string(n_layer) + ".ln_1.weight")) ++n_layer;
  for (const auto& [name, ref] : folder.tensors()) {
    if (name.rfind("h.", 0) != 0) continue;
    const int l = std::atoi(name.c_str() + 2);
    if (l >= n_layer)
      throw InputError(ref.file->path() + ": tensor '" + ref.stored_name + "' is of layer " + std::to_string(l) +
                       ", but config.json gives n_layer = " + std::to_string(n_layer));
  }
}

bool is_ignored_buffer(const std::string& name) {
  auto ends_with = [&](const char* suffix) {
    const size_t n = std::strlen(suffix);
    return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
  };
  return name.rfind("h.", 0) == 0 && (ends_with(".attn.bias") || ends_with(".attn.masked_bias"));
}

}  // namespace

std::string hf_tensor_name(const std::string& name, bool* transposed) {
  *transposed = false;
  if (name == "wte" || name == "wpe") return name + ".weight";
  static const std::pair<const char*, const char*> kLinear[] = {
      {"attn.qkv.", "attn.c_attn."}, {"attn.proj.", "attn.c_proj."}, {"mlp.fc.", "mlp.c_fc."}, {"mlp.proj.", "mlp.c_proj."}};
  for (const auto& [ours, theirs] : kLinear) {
    const size_t at = name.find(ours);
    if (at == std::string::npos) continue;
    const std::string rest = name.substr(at + std::strlen(ours));
    *transposed = rest == "weight";
    return name.substr(0, at) + theirs + rest;
  }
  return name;  // ln_1, ln_2, ln_f: the same names
}

template <typename T>
HfReadStats read_hf_base_weights(const std::string& dir, const ParamLayout& layout, int tp_rank, T* buffer,
                                 uint16_t* bf16_buffer) {
  if (layout.total_bf16 > 0 && !bf16_buffer)
    throw std::logic_error("read_hf_base_weights: the layout has bf16 tensors but no bf16 buffer was given");
  const HfModelFolder folder(dir);
  check_no_extra_layers(folder, layout);
  HfReadStats stats;
  for (const auto& f : folder.files()) stats.file_bytes += f->file_size();
  PageSet pages;
  std::set<std::string> dtypes;
  std::set<std::string> used;
  for (const TensorSpec& s : layout.tensors) {
    bool transposed = false;
    const std::string hf = hf_tensor_name(s.name, &transposed);
    const HfTensorRef* ref = folder.find(hf);
    const std::vector<uint64_t> want = expected_shape(s, transposed);
    if (!ref)
      throw InputError(folder.source() + ": no tensor '" + hf + "' (or 'transformer." + hf + "') of shape " +
                       dims_str(want) + ", which config.json's GPT-2 needs");
    used.insert(hf);
    const SafetensorsTensor& t = *ref->tensor;
    const std::string what = ref->file->path() + ": tensor '" + ref->stored_name + "'";
    if (t.dtype != StDtype::F32 && t.dtype != StDtype::F16 && t.dtype != StDtype::BF16)
      throw InputError(what + " has dtype " + st_dtype_name(t.dtype) + "; base weights must be F32, F16 or BF16");
    if (t.shape != want)
      throw InputError(what + " has shape " + t.shape_str() + ", but config.json's model needs " + dims_str(want));
    dtypes.insert(st_dtype_name(t.dtype));
    Sink<T> sink;
    if (s.dtype == DType::BF16) sink.bf16 = bf16_buffer + s.offset;
    else sink.native = buffer + s.offset;
    const int64_t bad = copy_rank_slice(*ref, s, transposed, tp_rank, sink, pages, stats.bytes_read);
    ref->file->release(t);
    if (bad >= 0)
      throw InputError(what + " holds a non-finite value (" + std::to_string(st_element(t, uint64_t(bad))) + ") at element " +
                       std::to_string(bad) + " of " + std::to_string(t.elements()) + "; refusing to train on it");
  }
  // GPT2LMHeadModel ties lm_head to wte; a file that stores it must store the same values,
  // since this model has no separate head. Each rank checks its own vocabulary rows.
  if (const HfTensorRef* head = folder.find("lm_head.weight")) {
    used.insert("lm_head.weight");
    const TensorSpec& wte = layout.at("wte");
    const SafetensorsTensor& t = *head->tensor;
    const std::string what = head->file->path() + ": tensor '" + head->stored_name + "'";
    if (t.shape != expected_shape(wte, false))
      throw InputError(what + " has shape " + t.shape_str() + "; a tied LM head has wte's " + dims_str(expected_shape(wte, false)));
    if (t.dtype != StDtype::F32 && t.dtype != StDtype::F16 && t.dtype != StDtype::BF16)
      throw InputError(what + " has dtype " + st_dtype_name(t.dtype) + "; base weights must be F32, F16 or BF16");
    const HfTensorRef& wref = *folder.find("wte.weight");
    for (int lr = 0; lr < wte.local_rows; ++lr) {
      const uint64_t row = uint64_t(wte.global_row(lr, tp_rank));
      if (row >= uint64_t(wte.rows)) break;
      for (uint64_t c = 0; c < uint64_t(wte.cols); ++c) {
        const uint64_t k = row * wte.cols + c;
        if (st_element(t, k) != st_element(*wref.tensor, k))
          throw InputError(what + " differs from wte.weight at row " + std::to_string(row) + ", column " +
                           std::to_string(c) + ": lora_dist ties the LM head to the token embedding (GPT-2's "
                           "tie_word_embeddings), so an untied head cannot be loaded");
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
    std::fprintf(stderr, "lora_dist: note: %s: %zu tensor(s) that GPT-2's language model does not use, ignored: %s\n",
                 dir.c_str(), ignored.size(), names.c_str());
  }
  for (const std::string& d : dtypes) stats.dtypes += (stats.dtypes.empty() ? "" : "+") + d;
  stats.pages_touched = pages.count();
  return stats;
}

template HfReadStats read_hf_base_weights<float>(const std::string&, const ParamLayout&, int, float*, uint16_t*);
template HfReadStats read_hf_base_weights<double>(const std::string&, const ParamLayout&, int, double*, uint16_t*);

}  // namespace lora
