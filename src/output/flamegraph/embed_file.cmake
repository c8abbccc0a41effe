# Turns a file into a C++ header holding its bytes as an array, so a text
# asset (the flame graph page) ships inside the binary. A byte array, not a
# raw string literal: no delimiter can collide with what the file contains.
#
#   cmake -DINPUT=page.html -DOUTPUT=page.h -DSYMBOL=kPage -P embed_file.cmake
foreach(variable INPUT OUTPUT SYMBOL)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "embed_file.cmake: -D${variable}=... is required")
  endif()
endforeach()

file(READ "${INPUT}" hex HEX)
if(hex STREQUAL "")
  message(FATAL_ERROR "embed_file.cmake: ${INPUT} is empty")
endif()
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Sixteen bytes a line keeps the header readable in an editor.
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line_of_bytes)
string(REGEX REPLACE "(${line_of_bytes})" "\\1\n" bytes "${bytes}")

get_filename_component(input_name "${INPUT}" NAME)
set(content "// Generated from ${input_name} by embed_file.cmake: do not edit.
#pragma once

namespace vigil::embedded {

inline constexpr unsigned char ${SYMBOL}[] = {
${bytes}
};

}  // namespace vigil::embedded
")
# Written only when it changed, so touching the input without changing it
# does not recompile what includes the header.
file(WRITE "${OUTPUT}.tmp" "${content}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
