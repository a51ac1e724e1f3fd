# Redis passwords on the real path: chat-node and chat-gateway against a
# requirepass Redis with no, a wrong and the right password (file,
# environment, ACL user); nothing on a command line or in a log.
add_test(NAME redis_auth
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_redis_auth.sh ${PROJECT_BINARY_DIR})
set_tests_properties(redis_auth PROPERTIES TIMEOUT 120 LABELS "integration;cred" RUN_SERIAL TRUE)
