// The storage type of the frozen base weights (model.dtype, DESIGN §7) and the view through
// which the frozen-weight ops read a weight whatever its type.
//   fp32: every frozen tensor in the model's own type (float; double in the gradient checks).
//   bf16: every frozen 2-D matrix (wte, wpe, qkv, proj, fc, mlp.proj) in bfloat16, half the
//         bytes; LayerNorm gains/biases and the linear biases stay in the model's type (they
//         are 0.1 % of the bytes and DESIGN §7 keeps LayerNorm parameters in fp32).
// Rounding to bf16 is round-to-nearest-even; NaN stays NaN (quiet).
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lora {

enum class DType : uint8_t { F32, BF16 };

inline const char* dtype_name(DType t) { return t == DType::BF16 ? "bf16" : "fp32"; }
inline DType parse_dtype(const std::string& s) {
  if (s == "fp32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  throw std::invalid_argument("unknown dtype '" + s + "' (fp32 or bf16)");
}

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

// A frozen weight as the ops see it: T[] (dtype F32, the model's own type) or uint16_t[]
// bf16 bits (dtype BF16). Converts implicitly from a T pointer, so the fp32 and double
// callers pass plain pointers as before.
template <typename T>
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  WeightView() = default;
  WeightView(const T* p) : data(p) {}  // NOLINT: implicit on purpose
  WeightView(const uint16_t* p) : data(p), dtype(DType::BF16) {}
  WeightView(const void* p, DType t) : data(p), dtype(t) {}
  const T* native() const { return static_cast<const T*>(data); }
  const uint16_t* bf16() const { return static_cast<const uint16_t*>(data); }
  bool is_bf16() const { return dtype == DType::BF16; }
  // Element i as T.
  T at(size_t i) const { return is_bf16() ? static_cast<T>(bf16_to_float(bf16()[i])) : native()[i]; }
  WeightView offset(size_t elements) const {
    return is_bf16() ? WeightView(bf16() + elements) : WeightView(native() + elements);
  }
};

}  // namespace lora
