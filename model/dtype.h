// The storage type of the frozen base weights (model.dtype, DESIGN §7) and the view through
// which the frozen-weight ops read a weight whatever its type.
//   fp32: every frozen tensor in the model's own type (float; double in the gradient checks).
//   bf16: every frozen 2-D matrix (wte, wpe, qkv, proj, fc, mlp.proj) in bfloat16, half the
//         bytes; LayerNorm gains/biases and the linear biases stay in the model's type (they
//         are 0.1 % of the bytes and DESIGN §7 keeps LayerNorm parameters in fp32).
//   nf4:  the blocks' matrices (qkv, proj, fc, mlp.proj) in 4-bit NormalFloat with double-
//         quantized scales (model/nf4_weight.h, 4.127 bits a weight); the embeddings and an
//         untied LM head in bf16, as with bf16; vectors in the model's type.
// Rounding to bf16 is round-to-nearest-even; NaN stays NaN (quiet).
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lora {

enum class DType : uint8_t { F32, BF16, NF4 };

inline const char* dtype_name(DType t) { return t == DType::BF16 ? "bf16" : t == DType::NF4 ? "nf4" : "fp32"; }
inline DType parse_dtype(const std::string& s) {
  if (s == "fp32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "nf4") return DType::NF4;
  throw std::invalid_argument("unknown dtype '" + s + "' (fp32, bf16 or nf4)");
}

struct Nf4ShardLayout;  // model/nf4_weight.h

inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN: keep it quiet
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// f rounded to the nearest bf16, as a float.
inline float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

// A frozen weight as the ops see it: T[] (dtype F32, the model's own type), uint16_t[] bf16
// bits (dtype BF16), or an NF4 shard's bytes with its layout (dtype NF4; `nf4` is in host
// memory, `data` in the backend's). Converts implicitly from a T pointer, so the fp32 and
// double callers pass plain pointers as before.
template <typename T>
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  const Nf4ShardLayout* nf4 = nullptr;
  // BF16: whether the GEMM computes in bf16 (rounds its input to bf16; bf16 units where the
  // device has them: model.dtype bf16) or in fp32 on the widened weight (model.dtype nf4, whose
  // run is then exactly the fp32 model on the dequantized weights).
  bool bf16_compute = true;
  WeightView() = default;
  WeightView(const T* p) : data(p) {}  // NOLINT: implicit on purpose
  WeightView(const uint16_t* p) : data(p), dtype(DType::BF16) {}
  WeightView(const uint8_t* shard, const Nf4ShardLayout* layout) : data(shard), dtype(DType::NF4), nf4(layout) {}
  const T* native() const { return static_cast<const T*>(data); }
  const uint16_t* bf16() const { return static_cast<const uint16_t*>(data); }
  const uint8_t* nf4_bytes() const { return static_cast<const uint8_t*>(data); }
  bool is_bf16() const { return dtype == DType::BF16; }
  bool is_nf4() const { return dtype == DType::NF4; }
  // Element i as T (fp32 and bf16 only: ops that read single elements, the embeddings, are
  // never NF4).
  T at(size_t i) const { return is_bf16() ? static_cast<T>(bf16_to_float(bf16()[i])) : native()[i]; }
  // The view from element `elements` on (fp32 and bf16), keeping the dtype and bf16_compute:
  // the LM head's rows from a vocabulary column on.
  WeightView offset(size_t elements) const {
    WeightView v = *this;
    v.data = is_bf16() ? static_cast<const void*>(bf16() + elements) : static_cast<const void*>(native() + elements);
    return v;
  }
};

}  // namespace lora
