// Counter-based random numbers (DESIGN §5): a draw depends only on (seed, counter), never
// on how many draws came before or on which rank makes it. That is what lets tp=1 and
// tp=4 initialise the same A and drop the same features.
#pragma once
#include <Random123/philox.h>

#include <array>
#include <cmath>
#include <cstdint>

#include "model/host_device.h"

namespace lora {

// What a draw is for; part of the counter so the streams never overlap.
enum class RngPurpose : uint32_t { BaseInit = 1, LoraInit = 2, Dropout = 3, Sampling = 4, RandomProjection = 5 };

LORA_HOST_DEVICE inline std::array<uint32_t, 4> philox(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {
  r123::Philox4x32 gen;
  r123::Philox4x32::key_type key = {{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
  r123::Philox4x32::ctr_type ctr = {{c0, c1, c2, c3}};
  const auto out = gen(ctr, key);
  return {out[0], out[1], out[2], out[3]};
}

// 24 random bits -> [0, 1), exact in float.
LORA_HOST_DEVICE inline float uniform01(uint32_t bits) { return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f); }

// Element `index` of tensor `tensor` drawn uniformly from [-bound, bound).
inline double uniform_element(uint64_t seed, RngPurpose purpose, uint32_t tensor, uint64_t index, double bound) {
  const auto r = philox(seed, static_cast<uint32_t>(purpose), tensor, static_cast<uint32_t>(index),
                        static_cast<uint32_t>(index >> 32));
  return (2.0 * uniform01(r[0]) - 1.0) * bound;
}

// Draw `index` of stream `stream`, uniform on [0, 1) with 53 random bits.
inline double uniform01_double(uint64_t seed, RngPurpose purpose, uint32_t stream, uint64_t index) {
  const auto r = philox(seed, static_cast<uint32_t>(purpose), stream, static_cast<uint32_t>(index),
                        static_cast<uint32_t>(index >> 32));
  return (static_cast<double>(r[0] >> 5) * 67108864.0 + static_cast<double>(r[1] >> 6)) * (1.0 / 9007199254740992.0);
}

// Element `index` of tensor `tensor` drawn from N(0, std^2) (Box-Muller on two draws).
inline double normal_element(uint64_t seed, RngPurpose purpose, uint32_t tensor, uint64_t index, double std) {
  const auto r = philox(seed, static_cast<uint32_t>(purpose), tensor, static_cast<uint32_t>(index),
                        static_cast<uint32_t>(index >> 32));
  const double u1 = (static_cast<double>(r[0]) + 1.0) / 4294967297.0;  // (0, 1]
  const double u2 = static_cast<double>(r[1]) / 4294967296.0;
  return std * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace lora
