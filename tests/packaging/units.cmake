# packaging/systemd and packaging/sysusers.d: systemd-analyze verify and security (exposure
# <= 2.5), systemd-sysusers, on a staged install of the build tree (units_test.py says why).
add_test(NAME packaging-units COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/units_test.py)
set_tests_properties(packaging-units PROPERTIES LABELS packaging TIMEOUT 180 SKIP_RETURN_CODE 77
	ENVIRONMENT "CRADLE_SRC=${PROJECT_SOURCE_DIR};CRADLE_BUILD=${CMAKE_BINARY_DIR}")
