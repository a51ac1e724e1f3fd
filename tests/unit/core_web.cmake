# core/ web layer: HTTP server, WebSocket server and client over real sockets.
chat_unit_test(test_core_http core testutil)
chat_unit_test(test_core_ws core testutil)
chat_unit_test(test_core_wsc core testutil)
# TLS: https and wss with certificates made by scripts/tls-ca.sh (openssl).
chat_unit_test(test_core_tls core testutil OpenSSL::SSL)
target_compile_definitions(test_core_tls PRIVATE TLS_CA_SCRIPT="${PROJECT_SOURCE_DIR}/scripts/tls-ca.sh")
