# Fails when a library folder includes a header it may not use (DESIGN.md):
#   accountant: no LibTorch (torch/, ATen/, c10/) and no other dptrain folder
#   audit:      the same rule as the accountant
#   report:     the same rule (the torch-free launcher links it)
#   hdf5:       no other dptrain folder (datasets and models both use it)
#   datasets:   no dp, models, train
#   dp/*:       no datasets, models, train; and within dp/ (DESIGN.md, docs/architecture.md):
#     archive     no other dp concept
#     layers      no other dp concept
#     clipping    layers only
#     mechanism   archive only (and the accountant)
#     optim       archive only: post-processing sees neither clipping nor samplers
#   models:     no datasets, train; of dp/ only the layers
#   bench:      no datasets, train (the step benchmark needs models and dp only)
#   train:      no bench
# Usage: cmake -DSOURCE_DIR=<root> -P check_layering.cmake
set(rules
  "accountant|(torch|ATen|c10)/|dptrain/(datasets|dp|models|train)/"
  "audit|(torch|ATen|c10)/|dptrain/(datasets|dp|models|train)/"
  "report|(torch|ATen|c10)/|dptrain/(accountant|audit|datasets|dp|models|train|bench)/"
  "hdf5|dptrain/(accountant|audit|datasets|dp|models|train|bench)/"
  "datasets|dptrain/(dp|models|train)/"
  "dp/archive|dptrain/(datasets|models|train)/|dptrain/dp/(layers|clipping|mechanism|optim)/"
  "dp/layers|dptrain/(datasets|models|train)/|dptrain/dp/(archive|clipping|mechanism|optim)/"
  "dp/clipping|dptrain/(datasets|models|train)/|dptrain/dp/(archive|mechanism|optim)/"
  "dp/mechanism|dptrain/(datasets|models|train)/|dptrain/dp/(layers|clipping|optim)/"
  "dp/optim|dptrain/(datasets|models|train)/|dptrain/dp/(layers|clipping|mechanism)/"
  "models|dptrain/(datasets|train|bench)/|dptrain/dp/(archive|clipping|mechanism|optim)/"
  "bench|dptrain/(datasets|train)/"
  "train|dptrain/bench/")
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
