# One-line errors of `dptrain train` and `generate` for values that used to
# wrap, hang, overflow late or crash (issue 13).
dptrain_cli_error_test(SeedNegative "error: --seed must be >= 0, got -1"
  train --seed -1 --noise-multiplier 1 --steps 1)
dptrain_cli_error_test(ThreadsAbsurd "error: --threads must be in \\[0, [0-9]+\\].*got 100000"
  --threads 100000 train --noise-multiplier 1 --steps 1)
dptrain_cli_error_test(NoiseMultiplierZero "error: give --target-epsilon > 0 .* both are 0"
  train --noise-multiplier 0 --steps 1)
dptrain_cli_error_test(NoiseMultiplierHuge "error: --noise-multiplier must be at most 1e\\+06, got 1e\\+300"
  train --noise-multiplier 1e300 --steps 1)
dptrain_cli_error_test(StepsHuge "error: --steps must be in \\[0, 1000000000\\]"
  train --noise-multiplier 1 --steps 9000000000000000000)
dptrain_cli_error_test(SummaryIsTheCheckpoint "error: --checkpoint and --summary are the same file"
  train --noise-multiplier 1 --steps 1 --checkpoint same.file --summary same.file)
dptrain_cli_error_test(ResumeAndOverwrite "error: give only one of --resume .* and --overwrite"
  train --noise-multiplier 1 --steps 1 --checkpoint c.ckpt --resume --overwrite)
dptrain_cli_error_test(WeightsExtension "error: --save-weights 'w.txt': the extension must be"
  train --noise-multiplier 1 --steps 1 --save-weights w.txt)
dptrain_cli_error_test(GenerateCheckpointIsADirectory "error: --checkpoint '/tmp': not a regular file"
  generate --checkpoint /tmp --prompt hi)
dptrain_cli_error_test(GenerateNeedsOneSource "error: give one of --weights .* and --checkpoint"
  generate --prompt hi)

dptrain_cli_error_test(RouteCacheNeedsASearch "error: --route-cache needs --routes measure or fixed"
  train --noise-multiplier 1 --steps 1 --route-cache r.tsv)
dptrain_cli_error_test(RoutesUnknown "error: --routes must be one of"
  train --noise-multiplier 1 --steps 1 --routes fastest)
dptrain_cli_error_test(MaxKeptNegative "error: --max-kept-mb must be -1 \\(no bound\\) or a size in MiB >= 0, got -2"
  train --noise-multiplier 1 --steps 1 --max-kept-mb -2)
dptrain_cli_error_test(TwoPassesNeedFlatClipping "error: --backward-passes 2 clips the flat norm only, got --clipping per-layer"
  train --noise-multiplier 1 --steps 1 --backward-passes 2 --clipping per-layer)
# Measured routes go to the cache; a fixed run takes them (same weights).
add_test(NAME Cli.RouteCacheIsWrittenThenTaken
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/route_cache_test.sh $<TARGET_FILE:dptrain>)
set_tests_properties(Cli.RouteCacheIsWrittenThenTaken PROPERTIES LABELS fast
                     PASS_REGULAR_EXPRESSION "1 passed, 0 failed" TIMEOUT 100)

# Two seeded runs, identical weights (a real run on Fashion-MNIST).
add_test(NAME Cli.SeedMakesTheWholeRunReproducible
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/seed_reproducible_test.sh $<TARGET_FILE:dptrain>)
set_tests_properties(Cli.SeedMakesTheWholeRunReproducible PROPERTIES LABELS fast
                     PASS_REGULAR_EXPRESSION "1 passed, 0 failed" TIMEOUT 100)

# The model registry knows the sequence models.
add_test(NAME Cli.ModelInfoKnowsRecurrentGemma COMMAND dptrain model info recurrentgemma-2b --json)
set_tests_properties(Cli.ModelInfoKnowsRecurrentGemma PROPERTIES LABELS fast
                     PASS_REGULAR_EXPRESSION "\"parameters\": 2682862080")
add_test(NAME Cli.ModelListCoversEveryModel COMMAND dptrain model list)
set_tests_properties(Cli.ModelListCoversEveryModel PROPERTIES LABELS fast
                     PASS_REGULAR_EXPRESSION "nfnet-f7\ngriffin-tiny.*recurrentgemma-2b")

# Without --config, the model's recipe is taken and said in the log; flags
# override it, --recipe none turns it off (checked on the plan line).
add_test(NAME Cli.RecipeIsTakenAndSaid
         COMMAND dptrain train --target-epsilon 1 --steps 1 --batch-size 512)
set_tests_properties(Cli.RecipeIsTakenAndSaid PROPERTIES LABELS fast
  PASS_REGULAR_EXPRESSION "recipe: cnn from configs/fashion_mnist_cnn_eps3_10epochs.toml.*expected batch 512.*max_grad_norm = 0.1")
add_test(NAME Cli.RecipeNoneKeepsTheBareDefaults
         COMMAND dptrain train --target-epsilon 1 --steps 1 --recipe none)
set_tests_properties(Cli.RecipeNoneKeepsTheBareDefaults PROPERTIES LABELS fast
  PASS_REGULAR_EXPRESSION "expected batch 256.*max_grad_norm = 1,"
  FAIL_REGULAR_EXPRESSION "recipe: ")

# dptrain launch: 2 and 3 Gloo ranks equal one process; a killed rank stops
# the run with its name; --resume finishes it.
add_test(NAME Cli.LaunchRanksEqualOneProcessAndSurviveAKilledRank
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/launch_test.sh $<TARGET_FILE:dptrain>)
set_tests_properties(Cli.LaunchRanksEqualOneProcessAndSurviveAKilledRank PROPERTIES LABELS fast
                     PASS_REGULAR_EXPRESSION "5 passed, 0 failed" TIMEOUT 300)
dptrain_cli_error_test(LaunchNeedsACommand "command is required"
  launch --nproc 2)
add_test(NAME Cli.DiffusionIsNotDataParallel
         COMMAND dptrain train --task diffusion --noise-multiplier 1 --steps 1)
set_tests_properties(Cli.DiffusionIsNotDataParallel PROPERTIES LABELS fast
  ENVIRONMENT "WORLD_SIZE=2;RANK=0"
  PASS_REGULAR_EXPRESSION "error: WORLD_SIZE=2: data-parallel training supports --task classify and lm")
add_test(NAME Cli.BadRankIsNamed COMMAND dptrain train --noise-multiplier 1 --steps 1)
set_tests_properties(Cli.BadRankIsNamed PROPERTIES LABELS fast
  ENVIRONMENT "WORLD_SIZE=2;RANK=5"
  PASS_REGULAR_EXPRESSION "error: environment variable RANK='5': expected an integer in \\[0, 1\\]")

# scripts/gpu_check.sh skips cleanly, with its reason as JSON, where there is
# no GPU (on a GPU machine this test is skipped: the script builds there).
add_test(NAME Cli.GpuCheckSkipsWithoutAGpu
         COMMAND bash -c "command -v nvidia-smi >/dev/null && exit 77; f=$(mktemp); DPTRAIN_GPU_OUT=$f bash ${PROJECT_SOURCE_DIR}/scripts/gpu_check.sh; rc=$?; rm -f $f; exit $rc")
set_tests_properties(Cli.GpuCheckSkipsWithoutAGpu PROPERTIES LABELS fast SKIP_RETURN_CODE 77
  PASS_REGULAR_EXPRESSION "^\\{\"skipped\": \"no nvidia-smi")
dptrain_cli_error_test(MixedPrecisionFp16 "error: --mixed-precision must be one of no, bf16, got 'fp16'"
  train --noise-multiplier 1 --steps 1 --mixed-precision fp16)
dptrain_cli_error_test(MixedPrecisionNeedsOnePass "error: --mixed-precision bf16 needs --backward-passes 1"
  train --noise-multiplier 1 --steps 1 --mixed-precision bf16 --backward-passes 2)
dptrain_cli_error_test(BenchMixedPrecisionFp16 "error: --mixed-precision must be no or bf16, got 'fp16' \\(fp16 needs loss scaling"
  bench step --mixed-precision fp16 --steps 1)
