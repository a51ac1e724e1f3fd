# gateway/: HTTP API against a real redis-server (private port), raw sockets.
chat_unit_test(test_gateway gateway testutil)
set_tests_properties(test_gateway PROPERTIES RUN_SERIAL TRUE)
