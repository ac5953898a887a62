# Data-set inputs of `dptrain data info` and `train` (issue 13): a bad one
# fails with `error: ` and the file, flag or value, never with
# std::bad_alloc or a misleading "0 bytes".
set(cli_dir ${CMAKE_CURRENT_SOURCE_DIR})
dptrain_cli_error_test(TrainConfigIsFolder
  "error: config '${cli_dir}': not a regular file \\(a folder\\)"
  train --config ${cli_dir})
dptrain_cli_error_test(TrainConfigMissing
  "error: config '${cli_dir}/no_such.toml': no such file"
  train --config ${cli_dir}/no_such.toml)
dptrain_cli_error_test(LmDatasetIsFolder
  "error: .*${cli_dir}: is a folder, expected a text file"
  train --task lm --model hawk-tiny --dataset text:${cli_dir}
  --sequence-length 16 --noise-multiplier 1 --steps 1 --batch-size 2)
dptrain_cli_error_test(DataInfoMissingPath
  "error: ${cli_dir}/no_such_data: no such file or folder"
  data info ${cli_dir}/no_such_data)
# `data info` takes the name `train --dataset` takes (needs the package).
if(EXISTS /usr/share/datasets/fashion-mnist)
  dptrain_cli_error_test(DataInfoTakesFashionMnistName
    "path: +/usr/share/datasets/fashion-mnist\nformat: idx\ntrain: 60000 examples"
    data info fashion-mnist)
endif()
