# Every store operation on SQLite, and the same cases on MongoDB against a
# CongoDB server started by scripts/congodb.sh (npm-installed on first use).
chat_unit_test(test_store store)
set_tests_properties(test_store PROPERTIES ENVIRONMENT "CHAT_TEST_MONGO=")
chat_unit_test(test_store_async store)
if(CHAT_MONGO)
  target_compile_definitions(test_store PRIVATE CHAT_HAVE_MONGO=1) # legacy documents
  add_test(NAME test_store_mongo
    COMMAND ${PROJECT_SOURCE_DIR}/scripts/congodb.sh with $<TARGET_FILE:test_store>)
  set_tests_properties(test_store_mongo PROPERTIES TIMEOUT 300 LABELS "unit;mongo")
endif()
