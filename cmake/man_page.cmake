# One man page: IN (scdoc source) with @CRADLE_VERSION@ replaced by VERSION, through SCDOC,
# into OUT. Run by cmake/Man.cmake as `cmake -P`; writes OUT only when scdoc succeeded, so a
# broken source fails the build instead of leaving a truncated page behind.
file(READ ${IN} text)
string(REPLACE "@CRADLE_VERSION@" "${VERSION}" text "${text}")
file(WRITE ${OUT}.scd "${text}")
execute_process(COMMAND ${SCDOC} INPUT_FILE ${OUT}.scd OUTPUT_FILE ${OUT}.tmp
	ERROR_VARIABLE err RESULT_VARIABLE rc)
file(REMOVE ${OUT}.scd)
if(NOT rc EQUAL 0)
	file(REMOVE ${OUT}.tmp)
	get_filename_component(name ${IN} NAME)
	message(FATAL_ERROR "scdoc: docs/man/${name}: ${err}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
