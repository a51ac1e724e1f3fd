# Room messages across a leader kill -9 and a ZooKeeper outage: every
# acknowledged room message reaches every member that stayed connected.
add_test(NAME cluster_failover_rooms
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/failover_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(cluster_failover_rooms PROPERTIES TIMEOUT 600 LABELS "integration;cluster" RUN_SERIAL TRUE)
