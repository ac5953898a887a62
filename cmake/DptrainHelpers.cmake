# Helpers shared by every folder: one call per library, test binary or benchmark.

# dptrain_warnings: the warning flags, as an interface target linked privately
# (build-tree only) by every dptrain target.
function(dptrain_add_warnings_target)
  add_library(dptrain_warnings INTERFACE)
  target_compile_options(dptrain_warnings INTERFACE
    $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wshadow -Wnon-virtual-dtor>)
  if(DPTRAIN_WERROR)
    target_compile_options(dptrain_warnings INTERFACE
      $<$<CXX_COMPILER_ID:GNU,Clang>:-Werror>)
  endif()
  if(DPTRAIN_SANITIZE)
    target_compile_options(dptrain_warnings INTERFACE
      -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(dptrain_warnings INTERFACE -fsanitize=address,undefined)
  endif()
endfunction()

# Headers of LibTorch produce warnings we cannot fix; mark them as system headers.
function(dptrain_link_torch target scope)
  target_link_libraries(${target} ${scope} ${TORCH_LIBRARIES})
  target_include_directories(${target} SYSTEM ${scope} ${TORCH_INCLUDE_DIRS})
endfunction()

# dptrain_add_torch_pch(): <torch/torch.h> precompiled three times for the
# whole build: as libraries compile (-fPIC), as executables do (-fPIE), and
# as test binaries do (-fPIE -O1): GCC refuses a PCH made with other
# settings. Each target that asks for a PCH reuses one of the three instead
# of precompiling its own (17 PCHs of 25-35 s each took ~4 min of a cold
# 2-core build).
function(dptrain_add_torch_pch)
  if(NOT DPTRAIN_USE_PCH)
    return()
  endif()
  foreach(kind pic pie test)
    add_library(dptrain_torch_pch_${kind} OBJECT ${PROJECT_SOURCE_DIR}/cmake/pch_anchor.cpp)
    dptrain_link_torch(dptrain_torch_pch_${kind} PRIVATE)
    target_link_libraries(dptrain_torch_pch_${kind} PRIVATE dptrain_warnings)
    target_compile_features(dptrain_torch_pch_${kind} PRIVATE cxx_std_17)
    target_precompile_headers(dptrain_torch_pch_${kind} PRIVATE <torch/torch.h>)
  endforeach()
  foreach(kind pie test)
    set_target_properties(dptrain_torch_pch_${kind} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(dptrain_torch_pch_${kind} PRIVATE -fPIE)
  endforeach()
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(dptrain_torch_pch_test PRIVATE ${DPTRAIN_TEST_OPTIMIZATION})
  endif()
endfunction()

# How test binaries are optimised (see dptrain_add_test).
set(DPTRAIN_TEST_OPTIMIZATION $<$<CONFIG:Release,RelWithDebInfo>:-O1>)

# dptrain_use_torch_pch(<target>): the shared PCH that fits the target's kind.
function(dptrain_use_torch_pch target)
  if(NOT DPTRAIN_USE_PCH)
    return()
  endif()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    target_precompile_headers(${target} REUSE_FROM dptrain_torch_pch_pie)
  else()
    target_precompile_headers(${target} REUSE_FROM dptrain_torch_pch_pic)
  endif()
endfunction()

# dptrain_add_library(<folder> SOURCES ... [DEPS ...] [PRIVATE_DEPS ...] [TORCH] [PCH])
# Creates target dptrain_<folder>, alias dptrain::<folder>, exported as dptrain::<folder>.
# Public headers live in <folder>/include/dptrain/<folder>/.
function(dptrain_add_library folder)
  cmake_parse_arguments(ARG "TORCH;PCH" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target dptrain_${folder})
  add_library(${target} STATIC ${ARG_SOURCES})
  add_library(dptrain::${folder} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${folder} OUTPUT_NAME dptrain_${folder})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${target} PUBLIC cxx_std_17)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS}
                        $<BUILD_INTERFACE:dptrain_warnings>)
  if(ARG_TORCH)
    dptrain_link_torch(${target} PUBLIC)
  endif()
  if(ARG_PCH)
    dptrain_use_torch_pch(${target})
  endif()
  install(TARGETS ${target} EXPORT dptrainTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()

# dptrain_add_test(<name> SOURCES ... DEPS ... [LABELS ...] [SHARDS n] [PCH])
# One GoogleTest binary. Its tests run as `n` ctest tests (default 2), each a
# process running every n-th test (GoogleTest's GTEST_TOTAL_SHARDS and
# GTEST_SHARD_INDEX), labelled `fast`, plus one process for the tests named
# *Slow* (label `slow`). A process per test, as gtest_discover_tests gives,
# cost ~1 s of LibTorch start-up per test: 543 s of ctest time for 717 tests,
# against 3.3 s for all 143 of dp_tests in one process. Configure with
# -DDPTRAIN_DISCOVER_TESTS=ON for one ctest test per GoogleTest test (to pick
# single tests with ctest -R); the binaries take --gtest_filter either way.
option(DPTRAIN_DISCOVER_TESTS "One ctest test per GoogleTest test" OFF)
function(dptrain_add_test name)
  cmake_parse_arguments(ARG "PCH" "SHARDS" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} dptrain_test_support
                        GTest::gtest GTest::gtest_main dptrain_warnings)
  if(ARG_PCH AND DPTRAIN_USE_PCH)
    target_precompile_headers(${name} REUSE_FROM dptrain_torch_pch_test)
  endif()
  # Test code only drives the libraries (built -O3 as users get them); at -O1
  # a test TU compiles ~25 % faster (private_loop_test.cpp: 23.5 s -> 17-18.5
  # s here), a few minutes of every cold CI run. They use their own PCH,
  # made with the same -O1: GCC 13+ refuses a PCH whose -O level implied
  # other target options (GCC 14, Debian 13: -munroll-only-small-loops,
  # -mvzeroupper).
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${name} PRIVATE ${DPTRAIN_TEST_OPTIMIZATION})
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS fast)
  endif()
  if(NOT ARG_SHARDS)
    set(ARG_SHARDS 2)
  endif()
  set(env "DPTRAIN_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  if(DPTRAIN_DISCOVER_TESTS)
    # Listing a binary's tests can take seconds on a loaded machine (LibTorch's
    # start-up); the default discovery timeout of 5 s failed ctest once here.
    gtest_discover_tests(${name}
      DISCOVERY_MODE PRE_TEST
      DISCOVERY_TIMEOUT 120
      TEST_FILTER "-*Slow*"
      PROPERTIES LABELS "${ARG_LABELS}" ENVIRONMENT "${env}")
    gtest_discover_tests(${name}
      DISCOVERY_MODE PRE_TEST
      DISCOVERY_TIMEOUT 120
      TEST_FILTER "*Slow*"
      TEST_SUFFIX ".slow"
      PROPERTIES LABELS "slow" ENVIRONMENT "${env}")
    return()
  endif()
  math(EXPR last "${ARG_SHARDS} - 1")
  foreach(shard RANGE ${last})
    add_test(NAME ${name}.shard${shard}of${ARG_SHARDS}
             COMMAND ${name} --gtest_filter=-*Slow* --gtest_brief=1)
    # A shard runs many tests: its limit is the sum of theirs, not ctest's
    # per-test default.
    set_tests_properties(${name}.shard${shard}of${ARG_SHARDS} PROPERTIES
      LABELS "${ARG_LABELS}" TIMEOUT 900
      ENVIRONMENT "${env};GTEST_TOTAL_SHARDS=${ARG_SHARDS};GTEST_SHARD_INDEX=${shard}")
  endforeach()
  # Tests named *Cuda* skip themselves without a GPU (in the shards too);
  # `ctest -L cuda` runs just them (scripts/gpu_check.sh).
  add_test(NAME ${name}.cuda COMMAND ${name} --gtest_filter=*Cuda* --gtest_brief=1)
  set_tests_properties(${name}.cuda PROPERTIES LABELS cuda TIMEOUT 900 ENVIRONMENT "${env}")
  add_test(NAME ${name}.slow COMMAND ${name} --gtest_filter=*Slow* --gtest_brief=1)
  set_tests_properties(${name}.slow PROPERTIES LABELS slow TIMEOUT 7200 ENVIRONMENT "${env}")
endfunction()

# dptrain_add_benchmark(<name> SOURCES ... DEPS ...)
function(dptrain_add_benchmark name)
  cmake_parse_arguments(ARG "PCH" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark dptrain_warnings)
  if(ARG_PCH)
    dptrain_use_torch_pch(${name})
  endif()
endfunction()

# dptrain_add_header_check(): one generated TU per public header, each
# including only that header, so a header that is not self-contained fails
# to compile.
function(dptrain_add_header_check)
  set(sources "")
  foreach(folder accountant audit datasets dp/archive dp/layers dp/clipping dp/mechanism
                 dp/optim models bench train)
    file(GLOB_RECURSE headers CONFIGURE_DEPENDS
         ${PROJECT_SOURCE_DIR}/${folder}/include/dptrain/*.h)
    foreach(h IN LISTS headers)
      file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR}/${folder}/include ${h})
      string(MAKE_C_IDENTIFIER "${rel}" id)
      set(tu ${CMAKE_CURRENT_BINARY_DIR}/header_check/${id}.cpp)
      file(CONFIGURE OUTPUT ${tu} CONTENT "#include \"${rel}\"\n")
      list(APPEND sources ${tu})
    endforeach()
  endforeach()
  add_library(dptrain_header_check OBJECT ${sources})
  target_link_libraries(dptrain_header_check PRIVATE dptrain::train dptrain::bench dptrain::audit
                        dptrain_warnings)
endfunction()

# dptrain_use_openmp(<target> <source> [extra compile options...])
# Compiles <source> with OpenMP so that its at::parallel_for calls run on
# LibTorch's thread pool: with LibTorch's OpenMP backend (Debian's) the
# parallel loop is inline code in ATen/ParallelOpenMP.h, and a TU built
# without -fopenmp runs it on one thread. The TU skips the precompiled header
# (its flags differ); the target links the same OpenMP runtime LibTorch uses.
# Without an OpenMP for the compiler (clang without libomp, as the fuzz
# build may be) the TU is built without it, and its loops run serially.
function(dptrain_use_openmp target source)
  find_package(OpenMP COMPONENTS CXX)
  if(NOT OpenMP_CXX_FOUND)
    message(STATUS "${source}: no OpenMP for ${CMAKE_CXX_COMPILER_ID}; its "
                   "at::parallel_for loops will run on one thread")
    set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "${ARGN}"
                                SKIP_UNITY_BUILD_INCLUSION ON)
    return()
  endif()
  set_source_files_properties(${source} PROPERTIES
    COMPILE_OPTIONS "${OpenMP_CXX_FLAGS};${ARGN}" SKIP_PRECOMPILE_HEADERS ON
    SKIP_UNITY_BUILD_INCLUSION ON)
  target_link_libraries(${target} PUBLIC ${OpenMP_CXX_FLAGS})
endfunction()
