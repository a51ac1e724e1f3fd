# Integration tests over real processes: Redis, chat-node, chat-gateway.
add_test(NAME conformance_single_node
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/conformance.sh ${PROJECT_BINARY_DIR})
set_tests_properties(conformance_single_node PROPERTIES TIMEOUT 300 LABELS "integration;conformance"
  RUN_SERIAL TRUE)

# A real 3-node cluster (Redis, ZooKeeper, gateway): the full conformance
# suite through the gateway, then kill -9 failover of a follower, the
# leader, and a Redis restart.
add_test(NAME cluster_failover
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/cluster_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(cluster_failover PROPERTIES TIMEOUT 600 LABELS "integration;cluster"
  RUN_SERIAL TRUE)

# The same cluster on the MongoDB store (a private CongoDB server, see
# scripts/congodb.sh): the full conformance suite and the failover scenarios.
if(CHAT_MONGO)
  add_test(NAME cluster_failover_mongo
    COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/cluster_test.py ${PROJECT_BINARY_DIR}
            --store mongo)
  set_tests_properties(cluster_failover_mongo PROPERTIES TIMEOUT 600
    LABELS "integration;cluster;mongo" RUN_SERIAL TRUE)
endif()
