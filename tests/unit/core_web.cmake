# core/ web layer: HTTP server, WebSocket server and client over real sockets.
chat_unit_test(test_core_http core testutil)
chat_unit_test(test_core_ws core testutil)
chat_unit_test(test_core_wsc core testutil)
