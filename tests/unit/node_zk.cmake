# node/zk.c against a real ZooKeeper started by scripts/zookeeper.sh on a
# free port; one server for the whole binary, so the test runs alone.
chat_unit_test(test_node_zk node)
target_compile_definitions(test_node_zk PRIVATE CHAT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
target_link_libraries(test_node_zk PRIVATE ${CMAKE_DL_LIBS})
set_tests_properties(test_node_zk PROPERTIES LABELS "unit;zk" RUN_SERIAL TRUE TIMEOUT 300)
