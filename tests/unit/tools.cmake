# Tools: chat-client's pure parts and chat-seed's code path.
chat_unit_test(test_client_cmd client)
chat_unit_test(test_seed seed)
