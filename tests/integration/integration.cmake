# Integration tests over real processes: Redis, chat-node, chat-gateway.
add_test(NAME conformance_single_node
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/conformance.sh ${PROJECT_BINARY_DIR})
set_tests_properties(conformance_single_node PROPERTIES TIMEOUT 300 LABELS "integration;conformance"
  RUN_SERIAL TRUE)
include(${CMAKE_CURRENT_LIST_DIR}/gateway.cmake OPTIONAL)
