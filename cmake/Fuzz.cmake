# cradle_add_fuzz(NAME SOURCE LIBS...)
#
# Every fuzz target is a file defining LLVMFuzzerTestOneInput(), kept with the tests of what it
# fuzzes (tests/<area>/fuzz_<what>.c); its corpus is tests/fuzz/corpus/NAME/. It is built twice:
#  - always, linked with tests/fuzz/fuzz_main.c into a replay driver NAME-replay that feeds every
#    file of the corpus to the target; ctest runs it (label fuzz), so the corpus is a regression
#    suite under every build;
#  - with CRADLE_FUZZ=ON (clang only), as a real libFuzzer binary NAME-libfuzzer.
#
# CRADLE_FUZZ=ON compiles the WHOLE project with -fsanitize=fuzzer-no-link (coverage for
# libFuzzer) plus ASan and UBSan, so the libraries a target links (common, proto, sim,
# agent_core) report their coverage and the fuzzer is not blind to the code it exists for; only
# the libFuzzer binaries themselves link -fsanitize=fuzzer (libFuzzer's main). A fuzz build is a
# build of its own (build-fuzz): nothing in it is meant to be installed.
if(CRADLE_FUZZ)
	if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
		message(FATAL_ERROR "CRADLE_FUZZ needs clang: -DCMAKE_C_COMPILER=clang")
	endif()
	add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
		-fno-omit-frame-pointer)
	add_link_options(-fsanitize=address,undefined)
endif()

function(cradle_add_fuzz name source)
	set(libs ${ARGN})
	if(NOT EXISTS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
		message(FATAL_ERROR "fuzz target ${name}: no corpus tests/fuzz/corpus/${name}/")
	endif()
	add_executable(${name}-replay ${source} ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_main.c)
	target_link_libraries(${name}-replay PRIVATE project_warnings ${libs})
	add_test(NAME fuzz-replay-${name}
		COMMAND ${name}-replay ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
	set_tests_properties(fuzz-replay-${name} PROPERTIES LABELS fuzz)
	if(CRADLE_FUZZ)
		add_executable(${name}-libfuzzer ${source})
		target_link_options(${name}-libfuzzer PRIVATE -fsanitize=fuzzer)
		target_link_libraries(${name}-libfuzzer PRIVATE project_warnings ${libs})
	endif()
endfunction()
