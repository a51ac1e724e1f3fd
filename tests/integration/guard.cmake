# Abuse limits on a real 3-node cluster: per-address connection cap, the
# login deadline, failed logins throttled per user and per address (429).
add_test(NAME cluster_guard
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/guard_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(cluster_guard PROPERTIES TIMEOUT 300 LABELS "integration;cluster" RUN_SERIAL TRUE)
