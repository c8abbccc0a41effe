# The HTML flame graph writer, included from src/output/CMakeLists.txt. Its
# page template (template.html) is compiled into the binary as a byte array,
# regenerated whenever the template changes, so `vigil` needs no data files.
set(VIGIL_FLAMEGRAPH_TEMPLATE ${CMAKE_CURRENT_LIST_DIR}/template.html)
set(VIGIL_FLAMEGRAPH_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_file.cmake)
# Included as "output/flamegraph_template.h", like our own headers.
set(VIGIL_FLAMEGRAPH_GENERATED_DIR ${CMAKE_CURRENT_BINARY_DIR}/generated)
set(VIGIL_FLAMEGRAPH_HEADER ${VIGIL_FLAMEGRAPH_GENERATED_DIR}/output/flamegraph_template.h)

add_custom_command(
  OUTPUT ${VIGIL_FLAMEGRAPH_HEADER}
  COMMAND ${CMAKE_COMMAND} -DINPUT=${VIGIL_FLAMEGRAPH_TEMPLATE} -DOUTPUT=${VIGIL_FLAMEGRAPH_HEADER}
          -DSYMBOL=kFlameGraphTemplate -P ${VIGIL_FLAMEGRAPH_EMBED_SCRIPT}
  DEPENDS ${VIGIL_FLAMEGRAPH_TEMPLATE} ${VIGIL_FLAMEGRAPH_EMBED_SCRIPT}
  COMMENT "Embedding the flame graph page template"
  VERBATIM)

target_sources(vigil_output PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/../flamegraph_html.cpp
  ${VIGIL_FLAMEGRAPH_HEADER})
target_include_directories(vigil_output PRIVATE ${VIGIL_FLAMEGRAPH_GENERATED_DIR})
