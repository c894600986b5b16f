# The source layout's include directions (docs/architecture.md): comm/, model/ and io/ include
# nothing from trainer/, and each room of trainer/ includes only rooms on lower floors.
add_test(NAME layout.include_order
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/layout/check_include_order.py ${PROJECT_SOURCE_DIR})
add_test(NAME layout.include_order_selftest
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/layout/check_include_order.py --self-test)
set_tests_properties(layout.include_order layout.include_order_selftest PROPERTIES LABELS layout TIMEOUT 60)
