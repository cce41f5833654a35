# The daemons inside the units' confinement, as far as it goes without systemd as PID 1: a
# read-only file system, no capabilities, the units' seccomp filter (sandbox_test.py says how).
pkg_check_modules(SECCOMP REQUIRED IMPORTED_TARGET libseccomp)
add_executable(test-sandbox-exec sandbox_exec.c)
target_link_libraries(test-sandbox-exec PRIVATE project_warnings PkgConfig::SECCOMP)
add_test(NAME packaging-sandbox
	COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/sandbox_test.py)
set_tests_properties(packaging-sandbox PROPERTIES LABELS packaging TIMEOUT 900
	SKIP_RETURN_CODE 77 ENVIRONMENT
	"CRADLE_SRC=${PROJECT_SOURCE_DIR};CRADLE_SANDBOX=$<TARGET_FILE:test-sandbox-exec>;CRADLE_AGENT=$<TARGET_FILE:cradle-agent>;CRADLE_DASHBOARD=$<TARGET_FILE:cradle-dashboard>;CRADLE_SIM=$<TARGET_FILE:cradle-sim>;NOTIFY_DRIVER=$<TARGET_FILE:test-dash-notify-driver>;LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp")
