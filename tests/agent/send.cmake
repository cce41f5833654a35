# The send client (client/send.c over client/client.c) against a real mosquitto on a free
# loopback port, with a responder in the test standing in for the agent's command execution.
# The real binary, the way admins call it: `cradle-agent send ...`.
set(send_cmd $<TARGET_FILE:cradle-agent>)
set(send_prefix send)
add_test(NAME integration-agent-cmd-send
	COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/send_test.py
		--send ${send_cmd} --send-prefix "${send_prefix}"
		--validate ${PROJECT_SOURCE_DIR}/tests/proto/validate.py
		--schema ${PROJECT_SOURCE_DIR}/proto/schema)
set_tests_properties(integration-agent-cmd-send PROPERTIES LABELS "integration;threads"
	TIMEOUT 60
	ENVIRONMENT "PYTHONPATH=${PROJECT_SOURCE_DIR}/tests/lib;LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp")

# End to end through the real intake (agent/cmd.c) behind a test bridge.
add_executable(cradle-intake-tool intake_tool.c)
target_link_libraries(cradle-intake-tool PRIVATE project_warnings agent_core)
add_test(NAME integration-agent-cmd-intake
	COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/intake_test.py
		--send ${send_cmd} --send-prefix "${send_prefix}"
		--tool $<TARGET_FILE:cradle-intake-tool>
		--validate ${PROJECT_SOURCE_DIR}/tests/proto/validate.py
		--schema ${PROJECT_SOURCE_DIR}/proto/schema)
set_tests_properties(integration-agent-cmd-intake PROPERTIES LABELS "integration;threads"
	TIMEOUT 60
	ENVIRONMENT "PYTHONPATH=${PROJECT_SOURCE_DIR}/tests/lib;LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp")
