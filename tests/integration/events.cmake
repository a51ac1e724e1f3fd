# Events when nodes die, on a real 3-node cluster: friends of a dead node's
# users hear "offline" (follower and leader deaths).
add_test(NAME cluster_events
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/events_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(cluster_events PROPERTIES TIMEOUT 600 LABELS "integration;cluster" RUN_SERIAL TRUE)
