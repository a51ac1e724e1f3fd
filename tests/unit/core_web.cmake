chat_unit_test(test_core_http core)
