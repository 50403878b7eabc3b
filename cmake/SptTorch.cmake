# Finds the PyTorch that the spt_torch extension builds against (SPT_TORCH=AUTO|ON|OFF) and
# prepares the build for it: everything compiles position-independent (spt's code links
# into the extension's shared library) and with PyTorch's C++ ABI. Included before any
# target is defined. Sets SPT_HAVE_TORCH, SPT_TORCH_INCLUDE_DIRS, SPT_TORCH_LIBRARY_DIR,
# SPT_TORCH_CUDA (the PyTorch is a CUDA build) and SPT_TORCH_PYTHON.
set(SPT_TORCH "AUTO" CACHE STRING "Build the PyTorch extension spt_torch: AUTO (when a Python with torch and its C++ headers is found), ON or OFF")
set_property(CACHE SPT_TORCH PROPERTY STRINGS AUTO ON OFF)
set(SPT_TORCH_PYTHON "" CACHE FILEPATH "Python whose torch spt_torch builds against (default: /usr/bin/python3 if it imports torch, else python3 on PATH)")

set(SPT_HAVE_TORCH OFF)
set(_spt_torch_query [=[
import os, sys
import torch, torch.utils.cpp_extension as ext
headers = [p for p in ext.include_paths() if os.path.exists(os.path.join(p, "torch", "library.h"))]
if not headers:
    sys.exit("torch " + torch.__version__ + " has no C++ headers (Debian: apt-get install libtorch-dev)")
print(";".join(ext.include_paths()))
print(ext.library_paths()[0])
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(torch.version.cuda or "")
print(torch.__version__)
]=])

function(_spt_torch_probe python out_ok out_lines)
  execute_process(COMMAND ${python} -c "${_spt_torch_query}" RESULT_VARIABLE rc OUTPUT_VARIABLE lines
                  ERROR_VARIABLE errors OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0)
    set(${out_ok} ON PARENT_SCOPE)
    set(${out_lines} "${lines}" PARENT_SCOPE)
  else()
    string(REGEX REPLACE ".*\n" "" last "${errors}")
    set(${out_ok} OFF PARENT_SCOPE)
    set(${out_lines} "${python}: ${last}" PARENT_SCOPE)
  endif()
endfunction()

if(NOT SPT_TORCH STREQUAL "OFF")
  set(_candidates ${SPT_TORCH_PYTHON})
  if(NOT SPT_TORCH_PYTHON)
    find_program(_spt_path_python NAMES python3)
    set(_candidates /usr/bin/python3 ${_spt_path_python})
  endif()
  set(_why "")
  foreach(python IN LISTS _candidates)
    if(EXISTS "${python}" AND NOT SPT_HAVE_TORCH)
      _spt_torch_probe("${python}" ok lines)
      if(ok)
        set(SPT_HAVE_TORCH ON)
        set(SPT_TORCH_PYTHON_FOUND "${python}")
        string(REPLACE "\n" ";" lines "${lines}")
      else()
        list(APPEND _why "${lines}")
      endif()
    endif()
  endforeach()
  if(NOT SPT_HAVE_TORCH AND SPT_TORCH STREQUAL "ON")
    message(FATAL_ERROR "SPT_TORCH=ON but no usable PyTorch: ${_why}; set SPT_TORCH_PYTHON or configure with -DSPT_TORCH=OFF")
  endif()
endif()

if(SPT_HAVE_TORCH)
  # One line per value, in the order the query prints them; the include paths are a list.
  list(LENGTH lines _n)
  math(EXPR _first_scalar "${_n} - 4")
  list(SUBLIST lines 0 ${_first_scalar} SPT_TORCH_INCLUDE_DIRS)
  list(GET lines ${_first_scalar} SPT_TORCH_LIBRARY_DIR)
  math(EXPR _i "${_first_scalar} + 1")
  list(GET lines ${_i} _abi)
  math(EXPR _i "${_first_scalar} + 2")
  list(GET lines ${_i} SPT_TORCH_CUDA_VERSION)
  math(EXPR _i "${_first_scalar} + 3")
  list(GET lines ${_i} SPT_TORCH_VERSION)
  set(SPT_TORCH_PYTHON "${SPT_TORCH_PYTHON_FOUND}")
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
  add_compile_definitions(_GLIBCXX_USE_CXX11_ABI=${_abi})
  message(STATUS "spt_torch: torch ${SPT_TORCH_VERSION} (CUDA '${SPT_TORCH_CUDA_VERSION}') of ${SPT_TORCH_PYTHON}")
else()
  message(STATUS "spt_torch: not built (SPT_TORCH=${SPT_TORCH}) ${_why}")
endif()
