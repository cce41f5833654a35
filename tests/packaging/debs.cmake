# The Debian packages (issue 11): built once by scripts/package (fixture), checked by lintian,
# installed, upgraded, removed and purged on this host with dpkg, and docs/deploy.md run block by
# block. Label packaging: dev build only (scripts/test). Installing needs root: without it the
# tests say so and exit 77 (skipped). dpkg is one per host: RESOURCE_LOCK dpkg.
set(PACKAGING_DIST ${CMAKE_BINARY_DIR}/packaging-dist)
set(PACKAGING_ENV CRADLE_SRC=${PROJECT_SOURCE_DIR} CRADLE_DIST=${PACKAGING_DIST})

# the one package build of the run (about 30 s on two cores)
add_test(NAME packaging-build
	COMMAND ${PROJECT_SOURCE_DIR}/scripts/package --out ${PACKAGING_DIST} --no-lintian)
set_tests_properties(packaging-build PROPERTIES LABELS packaging TIMEOUT 1200
	FIXTURES_SETUP cradle_debs)

add_test(NAME packaging-lintian
	COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/lintian_test.py)
add_test(NAME packaging-lifecycle
	COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/lifecycle_test.py)
set_tests_properties(packaging-lintian packaging-lifecycle PROPERTIES LABELS packaging
	FIXTURES_REQUIRED cradle_debs ENVIRONMENT "${PACKAGING_ENV}" TIMEOUT 600
	SKIP_RETURN_CODE 77)
set_tests_properties(packaging-lifecycle PROPERTIES RESOURCE_LOCK dpkg)

# docs/deploy.md block by block (it builds the packages itself, with scripts/package into dist/,
# as the page says): mosquitto with the drop-in, the dashboard and a station on this host
add_test(NAME packaging-deploy
	COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/deploy_test.py)
set_tests_properties(packaging-deploy PROPERTIES LABELS packaging ENVIRONMENT "${PACKAGING_ENV}"
	TIMEOUT 1500 SKIP_RETURN_CODE 77 RESOURCE_LOCK dpkg)
