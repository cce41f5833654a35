# cradle-sim's mobilebackup2 service (sim/svc_mobilebackup2.c) driven by Debian's
# idevicebackup2 1.3.0 through tests/lib/harness.py: cloud on/off and a scripted cloud error,
# full and incremental backups (TLS and plaintext), MBErrorDomain 208 -> exit 48 and the
# PurgeDiskSpace hang; an independent Python host on a raw socket (protocol details, refusals,
# bad input); fuzz_mobilebackup2 for the service's state machine on arbitrary input.
set(SIMBIN $<TARGET_FILE:cradle-sim>)
set(HERE ${CMAKE_CURRENT_SOURCE_DIR})

set(PY /usr/bin/python3)
add_test(NAME sim-backup-cloud COMMAND ${PY} ${HERE}/test_cloud.py ${SIMBIN} ${PROJECT_SOURCE_DIR})
add_test(NAME sim-backup-backup
	COMMAND ${PY} ${HERE}/test_backup.py ${SIMBIN} ${PROJECT_SOURCE_DIR})
add_test(NAME sim-backup-backup-plaintext
	COMMAND ${PY} ${HERE}/test_backup.py ${SIMBIN} ${PROJECT_SOURCE_DIR} --plaintext)
add_test(NAME sim-backup-fail
	COMMAND ${PY} ${HERE}/test_backup_fail.py ${SIMBIN} ${PROJECT_SOURCE_DIR})
add_test(NAME sim-backup-protocol
	COMMAND ${PY} ${HERE}/test_protocol.py ${SIMBIN} ${PROJECT_SOURCE_DIR})
set_tests_properties(sim-backup-cloud sim-backup-backup sim-backup-backup-plaintext sim-backup-fail
	sim-backup-protocol PROPERTIES LABELS integration TIMEOUT 60)

# The harness compiles the service itself against a test double of svc.h (no sockets, no TLS).
add_library(sim_backup_fuzz_deps INTERFACE)
target_include_directories(sim_backup_fuzz_deps INTERFACE ${PROJECT_SOURCE_DIR}/sim)
target_link_libraries(sim_backup_fuzz_deps INTERFACE common PkgConfig::PLIST PkgConfig::CJSON
	OpenSSL::Crypto)
cradle_add_fuzz(fuzz_mobilebackup2 ${HERE}/fuzz_mobilebackup2.c sim_backup_fuzz_deps)
