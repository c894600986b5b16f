# The command line: --version, --help, a missing --yaml, and `bench` printing every figure
# it promises (tokens/s, MFU against a measured peak, peak RSS, bytes all-reduced, per-op times).
add_test(NAME cli.version COMMAND $<TARGET_FILE:lora_dist> --version)
set_tests_properties(cli.version PROPERTIES PASS_REGULAR_EXPRESSION "^lora_dist [0-9]+\\.[0-9]+\\.[0-9]+")
add_test(NAME cli.help COMMAND $<TARGET_FILE:lora_dist> --help)
set_tests_properties(cli.help PROPERTIES PASS_REGULAR_EXPRESSION "--yaml.*bench.*merge")
add_test(NAME cli.no_yaml COMMAND $<TARGET_FILE:lora_dist>)
set_tests_properties(cli.no_yaml PROPERTIES WILL_FAIL TRUE)
add_test(NAME cli.bench_two_ranks
  COMMAND ${MPIRUN} --oversubscribe --allow-run-as-root -np 2 $<TARGET_FILE:lora_dist> bench
          --yaml ${CMAKE_CURRENT_SOURCE_DIR}/cli/bench_tiny.yaml --steps 2 --warmup 1)
# 2 layers x (q, v: A 4x64 + B 64x4 = 512 each; fc2: A 4x256 + B 64x4 = 1280) = 4608 floats
# = 18432 bytes, all summed at dp=2: the LoRA-gradient bytes must be exactly that.
set_tests_properties(cli.bench_two_ranks PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" LABELS mpi
  PASS_REGULAR_EXPRESSION "tokens/s: [0-9.]+\n.*MFU [0-9.]+% of [0-9.]+ GFLOP/s \\(fp32 FMA peak [0-9.]+/core, measured.*peak RSS per rank: [0-9]+ MiB.*LoRA grads 18432 = .*where a step's time goes.*fwd attention")
# A peak below what the step achieves (here a given one, 1 kFLOP/s per core) is not printed as
# a silent MFU above 100 %: bench says the peak is wrong (issue 25; unit test FmaPeak.* checks
# that the measured peak is at least a large sgemm's rate).
add_test(NAME cli.bench_mfu_above_peak_warns
  COMMAND ${MPIRUN} --oversubscribe --allow-run-as-root -np 2 $<TARGET_FILE:lora_dist> bench
          --yaml ${CMAKE_CURRENT_SOURCE_DIR}/cli/bench_tiny.yaml --steps 2 --warmup 1 --peak-gflops-per-core 1e-6)
set_tests_properties(cli.bench_mfu_above_peak_warns PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" LABELS mpi
  PASS_REGULAR_EXPRESSION "MFU [0-9.]+% of [0-9.e-]+ GFLOP/s \\(fp32 FMA peak [0-9.]+/core, given.*\nwarning: MFU above 100 %: the step achieved [0-9.]+ GFLOP/s, more than the given peak")
# --data: the steps run on a token shard's windows with its loss mask (the demo task: about a
# quarter scored); the scored share, the FLOPs without the unscored positions' LM head and the
# GEMM time are checked against the shard and the step (tests/cli/check_bench_data.py).
add_test(NAME cli.bench_masked_data
  COMMAND bash -c "rm -f bench_data.jsonl && \"$0\" --oversubscribe --allow-run-as-root -np 2 \"$1\" bench --yaml \"$2\" --steps 2 --warmup 1 --data \"$3\" --json bench_data.jsonl && /usr/bin/python3 \"$4\" bench_data.jsonl \"$3\""
          ${MPIRUN} $<TARGET_FILE:lora_dist> ${CMAKE_CURRENT_SOURCE_DIR}/cli/bench_tiny.yaml
          ${PROJECT_SOURCE_DIR}/data/demo_train.bin ${CMAKE_CURRENT_SOURCE_DIR}/cli/check_bench_data.py)
set_tests_properties(cli.bench_masked_data PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" LABELS mpi
  PASS_REGULAR_EXPRESSION "data: .*demo_train.bin \\(24\\.[0-9] % of its tokens scored.*in GEMM calls: [0-9.]+ of [0-9.]+ ms.*bench --data: scored share")
# A --data file that is not a token shard: exit 3, the file named, before any step.
add_test(NAME cli.bench_bad_data
  COMMAND ${CMAKE_COMMAND}
          "-DCMD=${MPIRUN}$<SEMICOLON>--oversubscribe$<SEMICOLON>--allow-run-as-root$<SEMICOLON>-np$<SEMICOLON>2$<SEMICOLON>$<TARGET_FILE:lora_dist>$<SEMICOLON>bench$<SEMICOLON>--yaml$<SEMICOLON>${CMAKE_CURRENT_SOURCE_DIR}/cli/bench_tiny.yaml$<SEMICOLON>--data$<SEMICOLON>${CMAKE_CURRENT_SOURCE_DIR}/cli/bench_tiny.yaml"
          "-DEXPECT=bench_tiny.yaml: "
          -DEXIT=3
          -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_failure.cmake)
set_tests_properties(cli.bench_bad_data PROPERTIES LABELS "mpi;badinput" ENVIRONMENT "OMP_NUM_THREADS=1")
# Full fine-tuning (lora.enabled: false) on the same shape: every base tensor's gradient is
# summed over DP, 474112 bytes = the base (wte 256x64, wpe 32x64, 2 blocks of 12 tensors,
# ln_f): 118528 floats; the FLOP count is 6N per token.
add_test(NAME cli.bench_full_finetuning
  COMMAND ${MPIRUN} --oversubscribe --allow-run-as-root -np 2 $<TARGET_FILE:lora_dist> bench
          --yaml ${CMAKE_CURRENT_SOURCE_DIR}/cli/bench_tiny_full.yaml --steps 2 --warmup 1)
set_tests_properties(cli.bench_full_finetuning PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" LABELS mpi
  PASS_REGULAR_EXPRESSION "\\| full fine-tuning \\|.*tokens/s: [0-9.]+\n.*peak RSS per rank: [0-9]+ MiB.*planned.*gradients 474112 = every base tensor's over DP")
# device.backend: cuda on a machine without a usable GPU: exit 2 on both ranks, the reason
# named (on a machine with GPUs the run would train: skipped there, gpu.cuda_runs covers it).
add_test(NAME cli.backend_cuda_needs_a_gpu
  COMMAND bash -c "if [ -e /dev/nvidia0 ]; then echo 'a GPU is visible: this is the no-GPU case'; exit 77; fi; exec \"$0\" \"$@\""
          ${CMAKE_COMMAND}
          "-DCMD=${MPIRUN}$<SEMICOLON>--oversubscribe$<SEMICOLON>--allow-run-as-root$<SEMICOLON>-np$<SEMICOLON>2$<SEMICOLON>$<TARGET_FILE:lora_dist>$<SEMICOLON>--yaml$<SEMICOLON>${CMAKE_CURRENT_SOURCE_DIR}/cli/backend_cuda.yaml"
          "-DEXPECT=lora_dist: config error: device.backend: cuda, but rank 0 cannot use a GPU: "
          -DEXIT=2
          -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_failure.cmake)
set_tests_properties(cli.backend_cuda_needs_a_gpu PROPERTIES LABELS "config;mpi" SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_NUM_THREADS=1")
# prepare's help names the tokenizer kinds it reads and the chat examples.
add_test(NAME cli.prepare_help COMMAND $<TARGET_FILE:lora_dist> prepare --help)
set_tests_properties(cli.prepare_help PROPERTIES PASS_REGULAR_EXPRESSION "messages.*chat template.*tokenizer\\.json.*tokenizer\\.model.*vocab\\.json")
