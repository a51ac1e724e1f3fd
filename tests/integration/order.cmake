# msgids sort in send order within every conversation (1:1, group, room)
# across the nodes of a real 3-node cluster, same-millisecond races included.
add_test(NAME msgid_order
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/order_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(msgid_order PROPERTIES TIMEOUT 600 LABELS "integration;cluster" RUN_SERIAL TRUE)
# The same on the MongoDB store: the per-conversation order comes from the store.
if(CHAT_MONGO)
  add_test(NAME msgid_order_mongo
    COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/order_test.py ${PROJECT_BINARY_DIR})
  set_tests_properties(msgid_order_mongo PROPERTIES TIMEOUT 600 ENVIRONMENT "CHAT_TEST_STORE=mongo"
    LABELS "integration;cluster;mongo" RUN_SERIAL TRUE)
endif()
# A chat's answer says what its store transaction did: one rolled back with a
# refused neighbour is an error and never delivered (SQLite: a trigger refuses it).
add_test(NAME store_rollback
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/rollback_test.py ${PROJECT_BINARY_DIR})
set_tests_properties(store_rollback PROPERTIES TIMEOUT 300 LABELS "integration;cluster" RUN_SERIAL TRUE)
