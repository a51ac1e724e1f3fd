# ecosystem/cluster end to end: up 3 nodes under a private pm2, status,
# kill -9 a node (pm2 brings it back), down leaves no process behind.
add_test(NAME ecosystem_cluster
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_ecosystem.sh ${PROJECT_BINARY_DIR})
set_tests_properties(ecosystem_cluster PROPERTIES TIMEOUT 300 LABELS "integration;ecosystem"
  RUN_SERIAL TRUE)
# The same with a 3-server ZooKeeper ensemble and the MongoDB store: the
# shared suite passes before and after the ensemble's leader is stopped.
if(CHAT_MONGO)
  add_test(NAME ecosystem_cluster_ha
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_ecosystem.sh ${PROJECT_BINARY_DIR} --ha)
  set_tests_properties(ecosystem_cluster_ha PROPERTIES TIMEOUT 300
    LABELS "integration;ecosystem;mongo" RUN_SERIAL TRUE)
endif()
# The same with `up --tls`: https and wss only, the client verifies, and the
# whole shared suite passes through TLS.
add_test(NAME ecosystem_cluster_tls
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_ecosystem.sh ${PROJECT_BINARY_DIR} --tls)
set_tests_properties(ecosystem_cluster_tls PROPERTIES TIMEOUT 300 LABELS "integration;ecosystem"
  RUN_SERIAL TRUE)
