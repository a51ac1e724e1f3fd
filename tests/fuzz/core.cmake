# core/ fuzz targets: the HTTP server and the server side of a WebSocket,
# driven through the real server on a socketpair.
chat_fuzz_target(fuzz_http core fuzzutil)
chat_fuzz_target(fuzz_ws core fuzzutil)
