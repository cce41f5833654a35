# The agent's durable outbox: unit tests on a temp directory.
add_executable(test-agent-outbox outbox_test.c)
target_link_libraries(test-agent-outbox PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
add_test(NAME unit-agent-outbox COMMAND test-agent-outbox)
set_tests_properties(unit-agent-outbox PROPERTIES LABELS unit)
cradle_add_fuzz(fuzz_outbox ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_outbox.c agent_core)
