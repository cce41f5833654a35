# The agent's device side: facts JSON, the probe scheduler, devmon, `cradle-agent --once`.
# Integration tests run the real helper and libimobiledevice against cradle-sim (TLS on).

add_executable(test-agent-facts facts_test.c)
target_link_libraries(test-agent-facts PRIVATE project_warnings agent_core PkgConfig::CMOCKA)
add_test(NAME unit-agent-facts COMMAND test-agent-facts)
set_tests_properties(unit-agent-facts PROPERTIES LABELS unit)

cradle_add_fuzz(fuzz_facts ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_facts.c agent_core)

set(PROBE_SCRATCH ${CMAKE_CURRENT_BINARY_DIR}/scratch)
file(MAKE_DIRECTORY ${PROBE_SCRATCH})
add_executable(test-agent-probe-sched sched_test.c)
target_link_libraries(test-agent-probe-sched PRIVATE project_warnings agent_core
	PkgConfig::CMOCKA)
add_test(NAME agent-probe-sched COMMAND test-agent-probe-sched
	$<TARGET_FILE:cradle-agent-probe> ${PROBE_SCRATCH})
set_tests_properties(agent-probe-sched PROPERTIES LABELS integration TIMEOUT 60)

add_test(NAME agent-probe-once COMMAND /usr/bin/python3
	${CMAKE_CURRENT_SOURCE_DIR}/test_once.py $<TARGET_FILE:cradle-sim>
	$<TARGET_FILE:cradle-agent> ${CMAKE_CURRENT_SOURCE_DIR}/data/states.json)

# the agent's own usbmuxd Listen client against a socket the test serves
add_executable(test-agent-idev-listen idev_listen_test.c)
target_link_libraries(test-agent-idev-listen PRIVATE project_warnings agent_core
	PkgConfig::CMOCKA)
add_test(NAME unit-agent-idev-listen COMMAND test-agent-idev-listen)
set_tests_properties(unit-agent-idev-listen PROPERTIES LABELS unit)

add_executable(devmon-watch devmon_watch.c)
target_link_libraries(devmon-watch PRIVATE project_warnings agent_core)
add_test(NAME agent-probe-devmon COMMAND /usr/bin/python3
	${CMAKE_CURRENT_SOURCE_DIR}/test_devmon.py $<TARGET_FILE:cradle-sim>
	$<TARGET_FILE:devmon-watch> ${CMAKE_CURRENT_SOURCE_DIR}/data/states.json)
set_tests_properties(agent-probe-once PROPERTIES LABELS integration TIMEOUT 90)
# devmon once ran libusbmuxd's event thread: kept under TSan (the daemon's other threads)
set_tests_properties(agent-probe-devmon PROPERTIES LABELS "integration;threads" TIMEOUT 90)
# issue 8 item 10: quick usbmuxd restarts (UNIX socket and TCP) lose no event, leak no socket
add_test(NAME agent-probe-mux-restart COMMAND /usr/bin/python3
	${CMAKE_CURRENT_SOURCE_DIR}/test_mux_restart.py $<TARGET_FILE:cradle-sim>
	$<TARGET_FILE:devmon-watch> ${CMAKE_CURRENT_SOURCE_DIR}/data/states.json)
set_tests_properties(agent-probe-mux-restart PROPERTIES LABELS "integration;reliability;threads"
	TIMEOUT 120)
