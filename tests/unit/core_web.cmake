# core/ web layer: HTTP server, WebSocket server and client over real sockets.
chat_unit_test(test_core_http core)
chat_unit_test(test_core_ws core)
chat_unit_test(test_core_wsc core)
