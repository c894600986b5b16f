# `lora_dist analyze` (issue 13, point 3): tests/analyze/analyze_test.py trains two adapters of
# r 2 and r 4 on a random HF GPT-2 folder, exports one as PEFT, and checks every subspace
# similarity φ and every amplification number against numpy (np.linalg.svd of the adapter.h5
# tensors read with h5py and of the base weights from the folder's safetensors, rel. < 1e-6),
# the PNG heatmaps, a checkpoint read like adapter.h5, and that bad input (a missing or
# damaged adapter, another model shape, a module an adapter lacks, i or j above r, a layer out
# of range, a PEFT folder read with another r) exits 2 or 3 naming the file and the tensor. The math alone: tests/unit/test_analyze.cpp.
add_test(NAME analyze.subspace_and_amplification
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/analyze/analyze_test.py
          --bin $<TARGET_FILE:lora_dist> --work ${CMAKE_BINARY_DIR}/analyze_test
          --data ${PROJECT_SOURCE_DIR}/data/demo_train.bin)
set_tests_properties(analyze.subspace_and_amplification PROPERTIES LABELS "analyze;hf;torch" TIMEOUT 300
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
