# Agent configuration table and statefile counters.
add_executable(test-agent-config config_test.c)
target_link_libraries(test-agent-config PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
add_test(NAME unit-agent-config COMMAND test-agent-config
	${PROJECT_SOURCE_DIR}/packaging/conf/cradle-agent.conf.example ${PROJECT_SOURCE_DIR}/agent/README.md)
set_tests_properties(unit-agent-config PROPERTIES LABELS unit)
cradle_add_fuzz(fuzz_config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_config.c agent_core)
