# cradle-sim's device half: lockdownd (TLS and plaintext), pairing, diagnostics_relay,
# notification_proxy, syslog_relay, driven by Debian's libimobiledevice-utils 1.3.0 tools
# through tests/lib/harness.py; fuzz_lockdown for the request parser and dispatcher.
set(SIMBIN $<TARGET_FILE:cradle-sim>)
set(HERE ${CMAKE_CURRENT_SOURCE_DIR})

set(PY /usr/bin/python3)
add_test(NAME sim-device-info
	COMMAND ${PY} ${HERE}/test_lockdown_info.py ${SIMBIN} ${PROJECT_SOURCE_DIR})
add_test(NAME sim-device-info-plaintext
	COMMAND ${PY} ${HERE}/test_lockdown_info.py ${SIMBIN} ${PROJECT_SOURCE_DIR} --plaintext)
add_test(NAME sim-device-pairing
	COMMAND ${PY} ${HERE}/test_idevicepair.py ${SIMBIN} ${PROJECT_SOURCE_DIR})
add_test(NAME sim-device-services
	COMMAND ${PY} ${HERE}/test_services.py ${SIMBIN} ${PROJECT_SOURCE_DIR})
add_test(NAME sim-device-services-plaintext
	COMMAND ${PY} ${HERE}/test_services.py ${SIMBIN} ${PROJECT_SOURCE_DIR} --plaintext)
set(SIM_DEVICE_TESTS sim-device-info sim-device-info-plaintext sim-device-pairing
	sim-device-services sim-device-services-plaintext)

set_tests_properties(${SIM_DEVICE_TESTS} PROPERTIES LABELS integration TIMEOUT 60)

cradle_add_fuzz(fuzz_lockdown ${HERE}/fuzz_lockdown.c sim)

add_executable(test-sim-session test_session.c)
target_link_libraries(test-sim-session PRIVATE project_warnings PkgConfig::IMOBILEDEVICE
	PkgConfig::USBMUXD PkgConfig::PLIST)
add_test(NAME sim-device-session COMMAND ${PY} ${HERE}/test_session.py ${SIMBIN}
	$<TARGET_FILE:test-sim-session> ${PROJECT_SOURCE_DIR})
set_tests_properties(sim-device-session PROPERTIES LABELS integration TIMEOUT 60)

add_test(NAME sim-device-robust COMMAND ${PY} ${HERE}/test_robust.py ${SIMBIN}
	${PROJECT_SOURCE_DIR})
set_tests_properties(sim-device-robust PROPERTIES LABELS integration TIMEOUT 60)

# Issue 12: live syslog lines, domain_changed to notification_proxy observers, the refusal
# flag and the compressed clock (time_scale), through idevicesyslog and the np C API.
add_executable(test-sim-np test_np.c)
target_link_libraries(test-sim-np PRIVATE project_warnings PkgConfig::IMOBILEDEVICE
	Threads::Threads)
add_test(NAME sim-device-live COMMAND ${PY} ${HERE}/test_live.py ${SIMBIN}
	$<TARGET_FILE:test-sim-np> ${PROJECT_SOURCE_DIR})
set_tests_properties(sim-device-live PROPERTIES LABELS "integration;threads" TIMEOUT 90)
add_test(NAME sim-night COMMAND ${PY} ${HERE}/test_night.py ${SIMBIN}
	$<TARGET_FILE:test-sim-np> ${PROJECT_SOURCE_DIR})
set_tests_properties(sim-night PROPERTIES LABELS "integration;threads" TIMEOUT 120)
