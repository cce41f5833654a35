# libproto: topics and the message codec (golden examples in proto/examples, negative fixtures in
# tests/proto/invalid). Command messages are tested by their own folder.
add_executable(test-proto-topics topics_test.c)
target_link_libraries(test-proto-topics PRIVATE project_warnings proto PkgConfig::CMOCKA)
add_test(NAME unit-proto-topics COMMAND test-proto-topics)

add_executable(test-proto-codec codec_test.c)
target_link_libraries(test-proto-codec PRIVATE project_warnings proto PkgConfig::CMOCKA)
add_test(NAME unit-proto-codec COMMAND test-proto-codec
	${PROJECT_SOURCE_DIR}/proto/examples ${PROJECT_SOURCE_DIR}/tests/proto/invalid)
set_tests_properties(unit-proto-topics unit-proto-codec PROPERTIES LABELS unit)

# Fuzz target: replayed over tests/fuzz/corpus/fuzz_proto_decode/ by ctest (label fuzz); with
# -DCRADLE_FUZZ=ON and clang also a libFuzzer binary.
cradle_add_fuzz(fuzz_proto_decode ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_proto_decode.c proto)
