# MQTT client + outbox against a real mosquitto: broker outage, agent kill -9, will delay, and a
# broker that lost the session (Paho -11 path). See agent/README.md "Tests".
add_executable(outbox_drive outbox_drive.c)
target_link_libraries(outbox_drive PRIVATE project_warnings agent_core)
foreach(scenario outage session-lost)
	add_test(NAME integration-agent-mqtt-${scenario}
		COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/mqtt_outage_test.py
			--scenario ${scenario} --driver $<TARGET_FILE:outbox_drive>)
	set_tests_properties(integration-agent-mqtt-${scenario} PROPERTIES
		LABELS "integration;threads"
		TIMEOUT 90
		ENVIRONMENT "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp")
endforeach()
