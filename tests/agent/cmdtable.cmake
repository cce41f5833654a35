# The persistent command id table (agent/cmdtable.c).
add_executable(test-agent-cmdtable cmdtable_test.c)
target_link_libraries(test-agent-cmdtable PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
add_test(NAME unit-agent-cmdtable COMMAND test-agent-cmdtable)
set_tests_properties(unit-agent-cmdtable PROPERTIES LABELS unit TIMEOUT 60)
