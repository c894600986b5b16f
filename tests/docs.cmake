# The documentation's links (docs/tests.md, "The links of these pages"): every relative link of
# README.md, docs/*.md and the repository's other Markdown files names a file that exists and,
# with #anchor, a heading of the target under GitHub's anchor rules. The self-test runs the
# checker on a small tree with known broken links, so the check cannot pass by checking nothing.
add_test(NAME docs.links
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_links.py ${PROJECT_SOURCE_DIR})
set_tests_properties(docs.links PROPERTIES LABELS docs TIMEOUT 60)

add_test(NAME docs.check_links_selftest
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/docs/test_check_links.py)
set_tests_properties(docs.check_links_selftest PROPERTIES LABELS docs TIMEOUT 60)
