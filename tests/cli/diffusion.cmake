# `dptrain diffusion`: one-line errors naming the flag, and the pipeline end
# to end (pretrain → finetune → sample → train on the samples).
dptrain_cli_error_test(DiffusionNoiseMultiplicityZero
  "error: --noise-multiplicity must be in \\[1, 4096\\], got 0"
  diffusion finetune --noise-multiplicity 0 --noise-multiplier 1 --steps 1)
dptrain_cli_error_test(DiffusionFinetuneNeedsADiffusionModel
  "error: --model cnn is not a diffusion model"
  diffusion finetune --model cnn --noise-multiplier 1 --steps 1)
dptrain_cli_error_test(DiffusionPretrainRefusesNoise
  "error: --target-epsilon and --noise-multiplier do not apply to non-private"
  diffusion pretrain --noise-multiplier 1 --steps 1)
dptrain_cli_error_test(DiffusionFieldsNeedTheDiffusionTask
  "error: --label-dropout needs --task diffusion, got --task classify"
  train --label-dropout 0.5 --noise-multiplier 1 --steps 1)
dptrain_cli_error_test(DiffusionSampleMissingWeights
  "error: --weights 'none.h5': no such file"
  diffusion sample --weights none.h5 --model unet-small --num-samples 2 --out s.h5)
dptrain_cli_error_test(DiffusionSampleOutExtension
  "error: --out 's.png' must end .h5 or .hdf5"
  diffusion sample --weights none.h5 --model unet-small --num-samples 2 --out s.png)
dptrain_cli_error_test(DiffusionSampleGuidance
  "error: --guidance must be finite and >= 0"
  diffusion sample --weights none.h5 --model unet-small --num-samples 2 --out s.h5
  --guidance -1)

# --config of sample and evaluate: the shipped files parse (the run gets as far
# as the missing weights / synthetic set), and a bad file is an error naming it
# and the key.
set(diffusion_configs ${PROJECT_SOURCE_DIR}/configs/diffusion)
dptrain_cli_error_test(DiffusionShippedSampleConfigParses
  "error: --weights 'none.h5': no such file"
  diffusion sample --config ${diffusion_configs}/sample/dpdm.toml --weights none.h5 --out s.h5)
foreach(dataset mnist fmnist)
  dptrain_cli_error_test(DiffusionShippedEvaluateConfigParses_${dataset}
    "error: --synthetic 'none.h5': no such file"
    diffusion evaluate --config ${diffusion_configs}/evaluate/dpdm_${dataset}.toml --synthetic none.h5)
endforeach()
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/diffusion_bad_key.toml "stepz = 2\n")
dptrain_cli_error_test(DiffusionConfigUnknownKey
  "error: --config '.*diffusion_bad_key.toml': unknown key 'stepz' \\(not a flag of `sample`\\)"
  diffusion sample --config ${CMAKE_CURRENT_BINARY_DIR}/diffusion_bad_key.toml)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/diffusion_bad_value.toml "epochs = \"ten\"\n")
dptrain_cli_error_test(DiffusionConfigBadValue
  "error: --config '.*diffusion_bad_value.toml': key 'epochs': Could not convert"
  diffusion evaluate --config ${CMAKE_CURRENT_BINARY_DIR}/diffusion_bad_value.toml)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/diffusion_section.toml "[sample]\nsteps = 2\n")
dptrain_cli_error_test(DiffusionConfigSection
  "error: --config '.*diffusion_section.toml': sections are not read, got \\[sample\\]"
  diffusion sample --config ${CMAKE_CURRENT_BINARY_DIR}/diffusion_section.toml)
dptrain_cli_error_test(DiffusionConfigMissingFile
  "error: --config 'none.toml': "
  diffusion evaluate --config none.toml)
dptrain_cli_error_test(DiffusionEvaluateNeedsSynthetic
  "error: --synthetic is required \\(on the command line or in --config\\)"
  diffusion evaluate --real fashion-mnist)

add_test(NAME Cli.DiffusionPipelineTrainsOnItsSamples
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/diffusion_pipeline_test.sh $<TARGET_FILE:dptrain>)
set_tests_properties(Cli.DiffusionPipelineTrainsOnItsSamples PROPERTIES LABELS fast
                     PASS_REGULAR_EXPRESSION "1 passed, 0 failed" TIMEOUT 150)
