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
# Image folders and CSV lists (issue 18): info, convert, train on them.
add_test(NAME Cli.ImageFoldersConvertAndTrain
         COMMAND bash ${cli_dir}/image_data_test.sh $<TARGET_FILE:dptrain>)
set_tests_properties(Cli.ImageFoldersConvertAndTrain PROPERTIES LABELS fast
                     PASS_REGULAR_EXPRESSION "1 passed, 0 failed" TIMEOUT 120)
dptrain_cli_error_test(TrainImageSizeBad
  "error: --image-size must be H,W with both >= 1"
  train --image-size 0,4 --noise-multiplier 1 --steps 1)
if(EXISTS /usr/share/datasets/fashion-mnist)
  dptrain_cli_error_test(DataConvertSizeNeedsImages
    "error: --size, --channels and --skip-corrupt apply to image folders"
    data convert fashion-mnist --to x.h5 --size 4,4)
  dptrain_cli_error_test(DataConvertOutExtension
    "error: --to 'x.png' must end .h5 or .hdf5"
    data convert fashion-mnist --to x.png)
endif()
