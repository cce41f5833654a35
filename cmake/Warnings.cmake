# project_warnings: applied to our own targets only (never to third-party code).
# -Werror only when CRADLE_WERROR is on (development builds and CI), so packagers
# with newer compilers are not broken by new warnings.
add_library(project_warnings INTERFACE)
target_compile_options(project_warnings INTERFACE
	-Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes
	-Wold-style-definition -Wpointer-arith -Wwrite-strings -Wvla -Wundef
	-Wimplicit-fallthrough -Wcast-qual -fno-common
	$<$<C_COMPILER_ID:GNU>:-Wduplicated-cond -Wduplicated-branches -Wlogical-op -Wjump-misses-init>
	$<$<C_COMPILER_ID:Clang>:-Wcomma -Wunreachable-code>
	$<$<BOOL:${CRADLE_WERROR}>:-Werror>
	# after the system headers it includes itself; see common/banned.h and cmake/Banned.cmake
	-include ${PROJECT_SOURCE_DIR}/common/banned.h)
