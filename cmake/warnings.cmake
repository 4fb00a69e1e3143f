# pbx_warnings: the warning set every project target links (STYLE.md §13).
add_library(pbx_warnings INTERFACE)
target_compile_options(pbx_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual -Wimplicit-fallthrough)
if(PBX_WERROR)
  target_compile_options(pbx_warnings INTERFACE -Werror)
endif()
