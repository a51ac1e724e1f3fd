# Contract corners on a real 3-node cluster: requests take effect in order
# (pipelined sessions, register+login back to back, bursts), \u0000 answered
# with the request's id.
add_test(NAME contract_corners
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/contract_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(contract_corners PROPERTIES TIMEOUT 600 LABELS "integration;cluster" RUN_SERIAL TRUE)
