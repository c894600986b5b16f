# `lora_dist plan` (trainer/plan/plan.h, issue 11): plan = measurement on real ranks, the GPT-3 175B
# answer end to end, and bad input (exit 2 with a message naming what is wrong).

# Collective bytes equal to bench's, byte for byte, and peak RSS within 10 %, at tp 1/2 x
# dp 1/2, recompute none/full, fp32/bf16, on two shapes where activations dominate (the
# cases are listed in plan_vs_bench.py).
add_test(NAME plan.vs_bench
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/plan/plan_vs_bench.py $<TARGET_FILE:lora_dist> ${MPIRUN}
          ${CMAKE_CURRENT_BINARY_DIR}/plan_vs_bench)
set_tests_properties(plan.vs_bench PROPERTIES TIMEOUT 1200 LABELS "mpi;plan" RUN_SERIAL TRUE)

add_test(NAME plan.help COMMAND $<TARGET_FILE:lora_dist> plan --help)
set_tests_properties(plan.help PROPERTIES LABELS plan
  PASS_REGULAR_EXPRESSION "--device.*--json.*--search.*Example: GPT-3 175B")

# The cpu preset measures this machine; the table names every term and a verdict.
add_test(NAME plan.cpu_table COMMAND $<TARGET_FILE:lora_dist> plan --yaml ${CMAKE_CURRENT_SOURCE_DIR}/cli/bench_tiny.yaml)
set_tests_properties(plan.cpu_table PROPERTIES LABELS plan ENVIRONMENT "OMP_NUM_THREADS=1"
  PASS_REGULAR_EXPRESSION "base weights.*saved block activations, recompute none.*runtime \\(measured.*peak per rank.*LoRA fits.*bytes all-reduced per rank.*tokens/s")

# DESIGN §8 end to end: the shipped 175B example at tp 8, bf16, recompute full fits an H100;
# --search names tp 8 as the smallest with bf16, tp 2 with nf4 as the smallest at all, and what
# fails there with fp32, with bf16 and without recompute.
add_test(NAME plan.gpt3_175b
  COMMAND $<TARGET_FILE:lora_dist> plan --yaml ${PROJECT_SOURCE_DIR}/launch/examples/gpt3_175b_lora.yaml --search)
set_tests_properties(plan.gpt3_175b PROPERTIES LABELS plan
  PASS_REGULAR_EXPRESSION "18,874,368 trainable.*LoRA fits.*full fine-tuning does not fit.*model.dtype bf16 and recompute full, the smallest tp that fits is 8.*smallest tp that fits at all is 2 \\(model.dtype nf4, recompute full\\); with fp32 and recompute full it needs.*with bf16 and recompute full it needs.*with nf4 and recompute none it needs")

# Bad input: exit 2 and a message naming the preset, the key or the layout.
function(plan_bad_input name expect)
  set(cmd $<TARGET_FILE:lora_dist> plan --yaml ${PROJECT_SOURCE_DIR}/launch/examples/gpt3_175b_lora.yaml ${ARGN})
  string(REPLACE ";" "$<SEMICOLON>" cmd "${cmd}")
  add_test(NAME plan.bad.${name}
    COMMAND ${CMAKE_COMMAND} "-DCMD=${cmd}" "-DEXPECT=${expect}" -DEXIT=2
            -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_failure.cmake)
  set_tests_properties(plan.bad.${name} PROPERTIES LABELS "plan;badinput" TIMEOUT 60)
endfunction()
plan_bad_input(unknown_device "--device: tpu-v5 not in {cpu,a100-80gb,h100-80gb,h200-141gb}" --device tpu-v5)
plan_bad_input(unknown_preset_set "--set device.preset=h100-80g: device.preset: must be one of cpu, a100-80gb, h100-80gb, h200-141gb, did you mean 'h100-80gb'?"
               --set device.preset=h100-80g)
plan_bad_input(unknown_key "--set lora.rr=4: lora.rr: unknown key, did you mean 'r'?" --set lora.rr=4)
plan_bad_input(unknown_section "--set trian.seq_len=8: trian: unknown section, did you mean 'train'?" --set trian.seq_len=8)
plan_bad_input(heads_not_divisible "--set parallel.tp=5: parallel.tp: must divide model.n_head = 96" --set parallel.tp=5)
plan_bad_input(not_a_key "--set tp=8: expected section.key=value" --set tp=8)
plan_bad_input(bad_value "--set train.recompute=partial: train.recompute: must be one of none, full" --set train.recompute=partial)
