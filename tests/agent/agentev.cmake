# agentev: when agent-level events are published (aggregation windows, usbmuxd and disk state,
# outbox pressure against a real outbox), with the real loop and timers.
add_executable(test-agentev agentev_test.c)
target_link_libraries(test-agentev PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
add_test(NAME unit-agent-agentev COMMAND test-agentev)
set_tests_properties(unit-agent-agentev PROPERTIES LABELS unit)
