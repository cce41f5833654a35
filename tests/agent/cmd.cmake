# Command intake (agent/cmd.c), command signatures (proto/cmdsig.c) and the command codec
# (proto/command.c). The rate limiter's test is common's (common/ratelimit.c).
foreach(t cmd cmdsig command)
	add_executable(test-agent-cmd-${t} ${t}_test.c)
	target_link_libraries(test-agent-cmd-${t} PRIVATE project_warnings agent_core
		PkgConfig::CMOCKA)
	target_compile_definitions(test-agent-cmd-${t} PRIVATE
		EXAMPLES_DIR="${PROJECT_SOURCE_DIR}/proto/examples")
	add_test(NAME unit-agent-cmd-${t} COMMAND test-agent-cmd-${t})
	set_tests_properties(unit-agent-cmd-${t} PROPERTIES LABELS unit)
endforeach()
cradle_add_fuzz(fuzz_cmd ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_cmd.c agent_core)
