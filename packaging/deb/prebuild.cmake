# Run by CPack (CPACK_PRE_BUILD_SCRIPTS) in the staging directory, after the
# (stripped) install and before the package is made:
#  * man pages: gzip -9n (Debian policy 12.1; -n: no name or time stamp);
#  * executables: drop the .comment and .note sections as dh_strip does
#    (CPACK_STRIP_FILES only strips the symbols).
set(_stage "${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
file(GLOB_RECURSE _pages "${_stage}/*/share/man/man*/*.[0-9]")
if(NOT _pages)
  message(FATAL_ERROR "prebuild.cmake: no man page under ${_stage}")
endif()
foreach(_p IN LISTS _pages)
  execute_process(COMMAND gzip -9nf "${_p}" RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "gzip -9n ${_p} failed")
  endif()
endforeach()

file(GLOB _bins "${_stage}/*/bin/*" "${_stage}/*/sbin/*")
foreach(_b IN LISTS _bins)
  execute_process(COMMAND strip --remove-section=.comment --remove-section=.note "${_b}"
                  RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "strip ${_b} failed")
  endif()
endforeach()
