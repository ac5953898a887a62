# Fails when a library folder includes a header it may not use (DESIGN.md):
#   accountant: no LibTorch (torch/, ATen/, c10/) and no other dptrain folder
#   audit:      the same rule as the accountant
#   datasets:   no dp, models, train
#   dp:         no datasets, models, train
#   models:     no datasets, train
# Usage: cmake -DSOURCE_DIR=<root> -P check_layering.cmake
set(rules
  "accountant|(torch|ATen|c10)/|dptrain/(datasets|dp|models|train)/"
  "audit|(torch|ATen|c10)/|dptrain/(datasets|dp|models|train)/"
  "datasets|dptrain/(dp|models|train)/"
  "dp|dptrain/(datasets|models|train)/"
  "models|dptrain/(datasets|train)/")
set(violations "")
foreach(rule IN LISTS rules)
  string(REPLACE "|" ";" parts "${rule}")
  list(POP_FRONT parts folder)
  string(JOIN "|" forbidden ${parts})
  file(GLOB_RECURSE files ${SOURCE_DIR}/${folder}/*.h ${SOURCE_DIR}/${folder}/*.cpp)
  foreach(f IN LISTS files)
    file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include")
    foreach(line IN LISTS lines)
      if(line MATCHES "[<\"](${forbidden})")
        string(APPEND violations "\n  ${f}: ${line}")
      endif()
    endforeach()
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "layering violations:${violations}")
endif()
message(STATUS "layering ok")
