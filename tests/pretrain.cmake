# Issue 13, point 2: launch/pretrain_base.sh in a short form (4 steps): the King James Bible
# from Debian's bible-kjv through `prepare` (GPT-2 tokenizer), full fine-tuning from GPT-2's
# seeded init, model.h5 exported as an HF GPT-2 folder with the tokenizer files, which
# model.init: hf then loads for `generate`.
add_test(NAME pretrain.base_short
  COMMAND bash -c "bash '${PROJECT_SOURCE_DIR}/launch/pretrain_base.sh' 4 && for f in config.json model.safetensors vocab.json merges.txt; do test -s \"$PRETRAIN_OUT/hf/$f\" || { echo \"missing hf/$f\"; exit 1; }; done && printf 'model: {init: hf, path: %s}\\ndata: {train: %s}\\ntrain: {seq_len: 32}\\n' \"$PRETRAIN_OUT/hf\" \"$PRETRAIN_OUT/train.bin\" > \"$PRETRAIN_OUT/gen.yaml\" && '$<TARGET_FILE:lora_dist>' generate --yaml \"$PRETRAIN_OUT/gen.yaml\" --prompt 'In the beginning' --max-new-tokens 4 --ignore-eot")
set_tests_properties(pretrain.base_short PROPERTIES LABELS "pretrain;hf;demo" TIMEOUT 600 PROCESSORS 2
  PASS_REGULAR_EXPRESSION "pretrain_base: .*hf: config.json merges.txt model.safetensors vocab.json.*generate: 4 new tokens"
  ENVIRONMENT "LORA_DIST=$<TARGET_FILE:lora_dist>;PRETRAIN_OUT=${CMAKE_BINARY_DIR}/pretrain_base;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
# Its base (build/pretrain_base/hf) is the one paper_study.short adapts.
set_tests_properties(pretrain.base_short PROPERTIES FIXTURES_SETUP pretrained_base_short)
