# `lora_dist generate` (issue 12, point 6): tests/generate/generate_test.py continues prompts on
# a random HF GPT-2 with GPT-2's vocabulary and checks the tokens against a PyTorch GPT-2 that
# re-runs the whole sequence each step (so the KV cache is checked too): greedy base-only at
# tp 1 and 2, greedy with a PEFT adapter and with a trained adapter.h5 (== its merged folder),
# sampling equal across layouts and inside top-k/top-p, --stop, and bad input (exit 2/3).
add_test(NAME generate.gpt2_greedy_and_sampling
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/generate/generate_test.py
          --bin $<TARGET_FILE:lora_dist> --work ${CMAKE_BINARY_DIR}/generate_test
          --bpe ${CMAKE_CURRENT_LIST_DIR}/data/gpt2_bpe --data ${PROJECT_SOURCE_DIR}/data/demo_train.bin)
set_tests_properties(generate.gpt2_greedy_and_sampling PROPERTIES LABELS "generate;hf;torch;mpi" TIMEOUT 600 PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")

# The README's walk-through (launch/hf_walkthrough.sh) end to end on a small random GPT-2
# folder: prepare, training at tp 2, export --peft and --merged, generate with the adapter and
# with the merged folder alone; each step must succeed and leave its files.
add_test(NAME generate.hf_walkthrough
  COMMAND bash -c "bash '${PROJECT_SOURCE_DIR}/launch/hf_walkthrough.sh' small && for f in train.bin val.bin run/adapter.h5 peft/adapter_config.json peft/adapter_model.safetensors merged/model.safetensors merged/config.json; do test -s \"$HF_WALK_OUT/$f\" || { echo \"missing $f\"; exit 1; }; done")
set_tests_properties(generate.hf_walkthrough PROPERTIES LABELS "generate;hf;mpi;demo" TIMEOUT 600 PROCESSORS 2
  ENVIRONMENT "LORA_DIST=$<TARGET_FILE:lora_dist>;HF_WALK_OUT=${CMAKE_BINARY_DIR}/hf_walkthrough;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
