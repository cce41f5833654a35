add_executable(test-backupstore backupstore_test.c)
target_link_libraries(test-backupstore PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
add_test(NAME unit-agent-backupstore COMMAND test-backupstore)
set_tests_properties(unit-agent-backupstore PROPERTIES LABELS unit)
