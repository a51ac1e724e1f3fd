# core/ fuzz targets: the HTTP server and the server side of a WebSocket,
# driven through the real server on a socketpair.
chat_fuzz_target(fuzz_http core)
chat_fuzz_target(fuzz_ws core)
