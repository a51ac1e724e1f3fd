# core/ base layer: buffers, misc, connections, pool.
chat_unit_test(test_core_buf core)
chat_unit_test(test_core_misc core)
chat_unit_test(test_core_conn core testutil)
chat_unit_test(test_core_pool core)
