# node/ unit tests (the node library; no network needed).
chat_unit_test(test_node_filter node)
chat_unit_test(test_node_croom node)
chat_unit_test(test_node_link node testutil)
