#include "io/hf_bnb_weights.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "io/input_error.h"
#include "model/nf4.h"

namespace lora {

namespace {

constexpr const char* kQuantState = ".quant_state.bitsandbytes__nf4";

// A companion tensor of W, checked for dtype and element count.
const SafetensorsTensor& companion(const HfModelFolder& folder, const std::string& name, const std::string& part,
                                   StDtype dtype, uint64_t elements, std::vector<std::string>& used) {
  const HfTensorRef* ref = folder.find(name + part);
  if (!ref)
    throw InputError(folder.source() + ": no tensor '" + name + part + "', which bitsandbytes stores with the 4-bit weight '" +
                     name + "'");
  used.push_back(name + part);
  const SafetensorsTensor& t = *ref->tensor;
  const std::string what = ref->file->path() + ": tensor '" + ref->stored_name + "'";
  if (t.dtype != dtype)
    throw InputError(what + " has dtype " + st_dtype_name(t.dtype) + "; bitsandbytes stores it as " + st_dtype_name(dtype));
  if (t.elements() != elements)
    throw InputError(what + " has " + std::to_string(t.elements()) + " elements; the quant_state's shape needs " +
                     std::to_string(elements));
  return t;
}

std::vector<float> floats(const SafetensorsTensor& t) {
  std::vector<float> v(t.elements());
  std::memcpy(v.data(), t.data, v.size() * sizeof(float));
  return v;
}

}  // namespace

bool is_bnb_4bit(const HfModelFolder& folder, const std::string& hf_name) {
  const HfTensorRef* w = folder.find(hf_name);
  return w && w->tensor->dtype == StDtype::U8 && folder.find(hf_name + kQuantState) != nullptr;
}

float read_bnb_nf4_segment(const HfModelFolder& folder, const std::string& hf_name, const TensorSpec& whole,
                           size_t segment, int tp_rank, uint8_t* shard, std::vector<std::string>& used) {
  const HfTensorRef& wref = *folder.find(hf_name);
  const std::string where = wref.file->path() + ": tensor '" + wref.stored_name + "'";
  // The quant_state: a JSON document stored as U8 bytes.
  const HfTensorRef* qref = folder.find(hf_name + kQuantState);
  used.push_back(hf_name + kQuantState);
  const std::string qwhat = qref->file->path() + ": tensor '" + qref->stored_name + "'";
  nlohmann::json q;
  try {
    q = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(qref->tensor->data), qref->tensor->bytes));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(qwhat + ": not a JSON quant_state (" + e.what() + ")");
  }
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!q.is_object() || !q.contains(key)) throw InputError(qwhat + ": the quant_state has no '" + key + "'");
    return q[key];
  };
  if (!field("quant_type").is_string() || field("quant_type") != "nf4")
    throw InputError(qwhat + ": quant_type " + field("quant_type").dump() +
                     " is not supported; model.dtype nf4 reads bitsandbytes' nf4 (fp4 is another code table)");
  if (field("blocksize") != kNf4Blocksize)
    throw InputError(qwhat + ": blocksize " + field("blocksize").dump() + "; model.dtype nf4 reads blocks of 64 weights");
  if (!q.contains("nested_offset") || !q.contains("nested_blocksize"))
    throw InputError(qwhat + ": not double-quantized (no nested_offset): model.dtype nf4 reads folders written with "
                             "bnb_4bit_use_double_quant=True; quantize from the 16-bit folder instead");
  if (field("nested_blocksize") != nf4::kNestedBlocksize)
    throw InputError(qwhat + ": nested_blocksize " + field("nested_blocksize").dump() + "; bitsandbytes uses 256");
  const nlohmann::json& shape = field("shape");
  const Nf4Segment seg = nf4_segments(whole)[segment];
  const int rows = seg.rows;
  if (!shape.is_array() || shape.size() != 2 || shape[0] != rows || shape[1] != whole.cols)
    throw InputError(qwhat + ": shape " + shape.dump() + ", but the model needs [" + std::to_string(rows) + ", " +
                     std::to_string(whole.cols) + "] (config.json's sizes)");
  if (!field("nested_offset").is_number()) throw InputError(qwhat + ": nested_offset is not a number");
  const float offset = field("nested_offset").get<float>();

  // The parts, their lengths from the shape.
  const uint64_t n = uint64_t(rows) * whole.cols, blocks = n / kNf4Blocksize;
  const SafetensorsTensor& w = *wref.tensor;
  if (w.elements() != n / 2)
    throw InputError(where + " has " + std::to_string(w.elements()) + " bytes of codes; shape " + shape.dump() +
                     " needs " + std::to_string(n / 2));
  const SafetensorsTensor& absmax = companion(folder, hf_name, ".absmax", StDtype::U8, blocks, used);
  const SafetensorsTensor& nested = companion(folder, hf_name, ".nested_absmax", StDtype::F32, seg.groups, used);
  const SafetensorsTensor& nested_map = companion(folder, hf_name, ".nested_quant_map", StDtype::F32, 256, used);
  const SafetensorsTensor& code_map = companion(folder, hf_name, ".quant_map", StDtype::F32, 16, used);
  const std::vector<float> table = floats(code_map);
  for (size_t i = 0; i < 16; ++i)
    if (table[i] != nf4::kNf4Code[i])
      throw InputError(folder.find(hf_name + ".quant_map")->file->path() + ": tensor '" + hf_name +
                       ".quant_map' is not bitsandbytes' NF4 table (entry " + std::to_string(i) + " is " +
                       std::to_string(table[i]) + ")");
  const std::vector<float> scales = floats(nested);
  for (size_t g = 0; g < scales.size(); ++g)
    if (!std::isfinite(scales[g]))
      throw InputError(where + ".nested_absmax holds a non-finite scale at " + std::to_string(g));
  if (!std::isfinite(offset)) throw InputError(qwhat + ": nested_offset is not finite");

  // The map: the first segment writes it, the others must carry the same.
  const Nf4ShardLayout& L = whole.nf4;
  float* map = reinterpret_cast<float*>(shard + L.map);
  if (segment == 0) std::memcpy(map, nested_map.data, 256 * sizeof(float));
  else if (std::memcmp(map, nested_map.data, 256 * sizeof(float)) != 0)
    throw InputError(where + ".nested_quant_map differs from the one of the matrix fused before it; lora_dist keeps "
                             "one map a fused tensor");
  // The nested scales at this segment's place among the tensor's.
  std::memcpy(reinterpret_cast<float*>(shard + L.nested) + seg.first_group, scales.data(), scales.size() * sizeof(float));
  // This rank's rows of the segment: local rows whose full row lies in it.
  const int first_row = seg.first_row;
  const uint64_t c0 = uint64_t(whole.global_col(0, tp_rank));
  for (int lr = 0; lr < whole.local_rows; ++lr) {
    const int row = whole.global_row(lr, tp_rank);
    if (row < first_row || row >= first_row + rows) continue;
    const uint64_t element = uint64_t(row - first_row) * whole.cols + c0;  // first element of the local row
    std::memcpy(shard + L.codes + size_t(lr) * L.cols / 2, w.data + element / 2, L.cols / 2);
    std::memcpy(shard + L.absmax + size_t(lr) * L.blocks_per_row, absmax.data + element / kNf4Blocksize,
                L.blocks_per_row);
  }
  return offset;
}

}  // namespace lora
