# Diagnosis and device-state building: pure functions of the agent, tested from tables of facts.
foreach(t diagnose state)
	add_executable(test-agent-${t} ${t}_test.c)
	target_link_libraries(test-agent-${t} PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
	# state compares its output with the golden examples of proto/
	add_test(NAME unit-agent-${t} COMMAND test-agent-${t} ${PROJECT_SOURCE_DIR}/proto/examples)
	set_tests_properties(unit-agent-${t} PROPERTIES LABELS unit)
endforeach()
