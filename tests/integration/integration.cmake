# Integration tests over real processes: Redis, chat-node, chat-gateway.
add_test(NAME conformance_single_node
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/conformance.sh ${PROJECT_BINARY_DIR})
set_tests_properties(conformance_single_node PROPERTIES TIMEOUT 300 LABELS "integration;conformance"
  RUN_SERIAL TRUE)

# A real 3-node cluster (Redis, ZooKeeper, gateway): the full conformance
# suite through the gateway, then kill -9 failover of a follower, the
# leader, and a Redis restart.
add_test(NAME cluster_failover
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/cluster_test.py ${PROJECT_BINARY_DIR}
          --allocator ${CHAT_MALLOC_NAME})
set_tests_properties(cluster_failover PROPERTIES TIMEOUT 600 LABELS "integration;cluster"
  RUN_SERIAL TRUE)

# The same cluster on the MongoDB store (a private CongoDB server, see
# scripts/congodb.sh): the full conformance suite and the failover scenarios.
if(CHAT_MONGO)
  add_test(NAME cluster_failover_mongo
    COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/cluster_test.py ${PROJECT_BINARY_DIR}
            --store mongo --allocator ${CHAT_MALLOC_NAME})
  set_tests_properties(cluster_failover_mongo PROPERTIES TIMEOUT 600
    LABELS "integration;cluster;mongo" RUN_SERIAL TRUE)
endif()

# Four simulated hosts (network namespaces on a bridge, root only): 3 chat
# nodes each beside one server of a ZooKeeper ensemble, Redis + MongoDB peer +
# gateway on the fourth. The shared suite through the gateway, then kill the
# leader's host, kill a follower's host, cut a host off for 10 s: time to
# recover and no acknowledged message lost.
if(CHAT_MONGO)
  add_test(NAME multihost
    COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/multihost_test.py ${PROJECT_BINARY_DIR})
  set_tests_properties(multihost PROPERTIES TIMEOUT 600
    LABELS "integration;cluster;mongo;multihost" RUN_SERIAL TRUE)
endif()

# The web client (client/web, served by the gateway) in Debian's chromium,
# headless, driven by puppeteer-core: register, friends, 1:1 with receipts,
# offline delivery, reload, history paging, rooms, a node's kill -9, markup
# shown as text, a phone-sized screen.
add_test(NAME browser
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/browser_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(browser PROPERTIES TIMEOUT 600 LABELS "integration;browser" RUN_SERIAL TRUE)
