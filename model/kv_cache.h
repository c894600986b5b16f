// The keys and values of every layer at the positions a sequence holds so far, for this TP
// rank's heads: what incremental decoding (lora_dist generate) keeps so that each new token
// costs one row through the model instead of a forward over the whole prefix.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace lora {

template <typename T>
struct KvCache {
  int capacity = 0;  // positions it can hold (<= model.context)
  int length = 0;    // positions filled
  int width = 0;     // this rank's KV heads times head_dim (grouped-query: fewer than its query heads)
  std::vector<std::vector<T>> k, v;  // per layer, [capacity x width]

  KvCache(int n_layer, int capacity_, int width_)
      : capacity(capacity_), width(width_),
        k(n_layer, std::vector<T>(static_cast<size_t>(capacity_) * width_)),
        v(n_layer, std::vector<T>(static_cast<size_t>(capacity_) * width_)) {}

  // Layer l's keys and values of n new positions from the fused qkv rows [q | k | v], q being
  // q_width wide.
  void append(int l, const T* qkv, int n, int q_width) {
    if (length + n > capacity)
      throw std::length_error("KV cache: " + std::to_string(length) + " + " + std::to_string(n) +
                              " positions exceed its capacity " + std::to_string(capacity));
    for (int i = 0; i < n; ++i) {
      const T* row = qkv + static_cast<size_t>(i) * (q_width + 2 * width) + q_width;
      const size_t at = static_cast<size_t>(length + i) * width;
      std::copy(row, row + width, k[l].begin() + at);
      std::copy(row + width, row + 2 * width, v[l].begin() + at);
    }
  }
  size_t bytes() const { return 2 * k.size() * static_cast<size_t>(capacity) * width * sizeof(T); }
};

}  // namespace lora
