# cradle_add_fuzz(NAME SOURCE LIBS...)
#
# Every fuzz target is a file defining LLVMFuzzerTestOneInput(). It is built twice:
#  - always, linked with tests/fuzz/fuzz_main.c into a replay driver that feeds every file of
#    tests/fuzz/corpus/NAME/ to the target; ctest runs it, so the corpus is a regression suite
#    under the normal and the ASan+UBSan build alike;
#  - with CRADLE_FUZZ=ON and clang, as a real libFuzzer binary NAME-libfuzzer for fuzzing runs.
function(cradle_add_fuzz name source)
	set(libs ${ARGN})
	add_executable(${name}-replay ${source} ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_main.c)
	target_link_libraries(${name}-replay PRIVATE project_warnings ${libs})
	add_test(NAME fuzz-replay-${name}
		COMMAND ${name}-replay ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
	set_tests_properties(fuzz-replay-${name} PROPERTIES LABELS fuzz)
	if(CRADLE_FUZZ)
		add_executable(${name}-libfuzzer ${source})
		target_compile_options(${name}-libfuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
		target_link_options(${name}-libfuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
		target_link_libraries(${name}-libfuzzer PRIVATE ${libs})
	endif()
endfunction()
