# common/banned.h poisons unsafe C library calls in every target that links project_warnings
# (cmake/Warnings.cmake force-includes it). cradle_banned_exceptions() lets the files below keep
# their strcpy until they are fixed: each copies a string whose length was checked just before,
# so none is a known overflow, but each should become memcpy with that length or snprintf. Remove
# a line when its file is fixed; never add one (a moved file then fails loudly, as it should).
function(cradle_banned_exceptions)
	set(legacy_strcpy
		agent/once.c
		proto/command.c proto/topics.c)
	foreach(f ${legacy_strcpy})
		get_filename_component(dir ${PROJECT_SOURCE_DIR}/${f} DIRECTORY)
		if(NOT EXISTS ${PROJECT_SOURCE_DIR}/${f})
			message(FATAL_ERROR "cmake/Banned.cmake lists ${f}, which does not exist: remove "
				"the line (a moved file is not exempt at its new place)")
		endif()
		set_source_files_properties(${PROJECT_SOURCE_DIR}/${f} DIRECTORY ${dir}
			PROPERTIES COMPILE_DEFINITIONS CRADLE_BANNED_ALLOW_STRCPY)
	endforeach()
endfunction()
