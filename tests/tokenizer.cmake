# The GPT-2 byte-level BPE tokenizer (io/gpt2_tokenizer.h) token for token against OpenAI's
# encoder.py algorithm (python3-regex) and the npm gpt-3-encoder (node), with GPT-2's real
# vocabulary and merges (tests/data/gpt2_bpe), on a varied UTF-8 corpus; decode(encode(x)) == x.
add_executable(gpt2_tokenize_driver ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/gpt2_tokenize_driver.cpp)
target_link_libraries(gpt2_tokenize_driver PRIVATE lora_core)
add_test(NAME tokenizer.gpt2_references
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/tokenizer/tokenizer_test.py
          --driver $<TARGET_FILE:gpt2_tokenize_driver> --work ${CMAKE_BINARY_DIR}/tokenizer_test)
set_tests_properties(tokenizer.gpt2_references PROPERTIES LABELS "tokenizer" TIMEOUT 300)
