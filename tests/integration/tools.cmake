# chat-seed + chat-client end to end (batch and interactive under tmux)
# against Redis, chat-node and chat-gateway on private ports.
add_test(NAME tools_client
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_client.sh ${PROJECT_BINARY_DIR})
set_tests_properties(tools_client PROPERTIES TIMEOUT 300 LABELS "integration;tools"
  RUN_SERIAL TRUE)
