// Round trip of `lora_dist export --peft`: reads an adapter.h5 (verified against run.yaml)
// and the PEFT folder exported from it (io/peft_adapter.h's reader), and compares every LoRA
// tensor bit for bit.
//   peft_roundtrip_driver run.yaml adapter.h5 peft_dir
// Prints "identical: N tensors, M values" and exits 0, or names the first differing element
// and exits 1; an unreadable or unfitting input is exit 3 with the reader's message.
#include <cstdio>
#include <cstring>
#include <vector>

#include "io/checkpoint.h"
#include "io/input_error.h"
#include "io/peft_adapter.h"
#include "trainer/config/config_loader.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s run.yaml adapter.h5 peft_dir\n", argv[0]);
    return 2;
  }
  try {
    const lora::RunConfig cfg = lora::load_run_config(argv[1]);
    const lora::LoraLayout layout = lora::lora_layout(cfg.model, cfg.lora, 1);
    std::vector<float> h5(layout.total), peft;
    lora::read_adapter(argv[2], cfg.model, cfg.lora, lora::base_fingerprint(cfg.model), layout, 0, h5.data());
    lora::read_peft_adapter(argv[3], cfg.lora, cfg.model, layout, peft);
    for (const lora::TensorSpec& t : layout.tensors)
      for (size_t i = 0; i < t.local_size(); ++i)
        if (std::memcmp(&h5[t.offset + i], &peft[t.offset + i], sizeof(float)) != 0) {
          std::printf("differ: %s element %zu: %.9g in %s, %.9g in %s\n", t.name.c_str(), i, h5[t.offset + i], argv[2],
                      peft[t.offset + i], argv[3]);
          return 1;
        }
    std::printf("identical: %zu tensors, %zu values\n", layout.tensors.size(), layout.total);
    return 0;
  } catch (const lora::InputError& e) {
    std::fprintf(stderr, "input error: %s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
