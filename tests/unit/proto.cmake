# proto/ unit tests: one cmocka binary per source file under test.
chat_unit_test(test_proto_envelope proto)
chat_unit_test(test_proto_fields proto)
chat_unit_test(test_proto_events proto)
chat_unit_test(test_proto_msgid proto)
chat_unit_test(test_proto_json proto testutil)
# cluster MACs are cross-checked against OpenSSL's independent HMAC.
chat_unit_test(test_proto_cluster proto OpenSSL::Crypto)
