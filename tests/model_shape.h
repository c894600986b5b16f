// The small model shapes the tests train: one line per shape instead of five assignments.
#pragma once
#include "trainer/config/run_config.h"

namespace lora::test {

inline ModelConfig model_shape(int n_layer, int n_head, int d_model, int vocab_size, int context) {
  ModelConfig m;
  m.n_layer = n_layer;
  m.n_head = n_head;
  m.d_model = d_model;
  m.vocab_size = vocab_size;
  m.context = context;
  return m;
}

}  // namespace lora::test
