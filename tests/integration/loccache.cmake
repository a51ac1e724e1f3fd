# The leader's location cache is renewed while a conversation uses it (only
# the first message waits for Redis), on a real 3-node cluster.
add_test(NAME cluster_loccache
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/loccache_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(cluster_loccache PROPERTIES TIMEOUT 300 LABELS "integration;cluster" RUN_SERIAL TRUE)
