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

add_test(NAME Cli.DiffusionPipelineTrainsOnItsSamples
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/diffusion_pipeline_test.sh $<TARGET_FILE:dptrain>)
set_tests_properties(Cli.DiffusionPipelineTrainsOnItsSamples PROPERTIES LABELS fast
                     PASS_REGULAR_EXPRESSION "1 passed, 0 failed" TIMEOUT 150)
