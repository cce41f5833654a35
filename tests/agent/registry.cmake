# registry: the paced republishing of every known state after a connect, with the real loop and
# timers (probes run /bin/true, which answers nothing: the devices only need to be known).
add_executable(test-registry registry_test.c)
target_link_libraries(test-registry PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
add_test(NAME unit-agent-registry COMMAND test-registry)
set_tests_properties(unit-agent-registry PROPERTIES LABELS "unit;reliability")
