# Writes the file IN as a C byte array NAME (NUL-terminated, length NAME_len without the NUL)
# to OUT: cmake -DIN=... -DOUT=... -DNAME=... -P embed.cmake. Used for openapi.json, so the
# document served at /api/v1/openapi.json is the one in the source tree, compiled in.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n"
	bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from ${IN} by embed.cmake. Do not edit. */\n"
	"#include <stddef.h>\n"
	"extern const unsigned char ${NAME}[];\n"
	"extern const size_t ${NAME}_len;\n"
	"const unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
	"const size_t ${NAME}_len = ${len};\n")
