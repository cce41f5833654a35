add_executable(test-actions actions_test.c)
target_link_libraries(test-actions PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
add_test(NAME unit-agent-actions COMMAND test-actions)
set_tests_properties(unit-agent-actions PROPERTIES LABELS unit)
