# Man pages: every docs/man/<name>.<section>.scd (scdoc, Debian package scdoc) becomes the page
# <name>.<section> in ${CMAKE_BINARY_DIR}/man at build time (target `man`, part of `all`) and is
# installed into ${CMAKE_INSTALL_MANDIR}/man<section>. A new page needs no CMake change: the glob
# picks it up at the next configure. "@CRADLE_VERSION@" in a page becomes the package version
# (the footer of every page names it). Without scdoc the configuration fails: the packages must
# not lose their pages silently.
include(GNUInstallDirs)
find_program(SCDOC scdoc)
if(NOT SCDOC)
	message(FATAL_ERROR "scdoc not found: it turns docs/man/*.scd into man pages "
		"(scripts/setup installs it)")
endif()

file(GLOB CRADLE_MAN_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.scd)
set(CRADLE_MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(CRADLE_MAN_PAGES)
foreach(src ${CRADLE_MAN_SOURCES})
	get_filename_component(page ${src} NAME)
	string(REGEX REPLACE "\\.scd$" "" page ${page})
	if(NOT page MATCHES "\\.([1-9])$")
		message(FATAL_ERROR "docs/man/${page}.scd: a page is named <name>.<section>.scd")
	endif()
	set(section ${CMAKE_MATCH_1})
	set(out ${CRADLE_MAN_DIR}/${page})
	add_custom_command(OUTPUT ${out}
		COMMAND ${CMAKE_COMMAND} -DSCDOC=${SCDOC} -DIN=${src} -DOUT=${out}
			-DVERSION=${CRADLE_VERSION} -P ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake
		DEPENDS ${src} ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake ${CRADLE_CHANGELOG}
		COMMENT "Generating man page ${page}"
		VERBATIM)
	list(APPEND CRADLE_MAN_PAGES ${out})
	install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man ALL DEPENDS ${CRADLE_MAN_PAGES})
