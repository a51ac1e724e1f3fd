# chat-bench smoke test: every scenario briefly against a real Redis + chat-node.
add_test(NAME bench_smoke
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_bench.sh ${PROJECT_BINARY_DIR})
set_tests_properties(bench_smoke PROPERTIES TIMEOUT 600 LABELS "integration;bench" RUN_SERIAL TRUE)

# chat-floor smoke test: storm, push and ring briefly on loopback.
add_test(NAME floor_smoke
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_floor.sh ${PROJECT_BINARY_DIR})
set_tests_properties(floor_smoke PROPERTIES TIMEOUT 300 LABELS "integration;bench" RUN_SERIAL TRUE)
