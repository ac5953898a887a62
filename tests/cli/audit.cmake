# `dptrain audit` and `dptrain audit bound`: one-line errors naming the flag,
# a short seeded audit run printing its JSON keys, and the bound from score
# files written here (canaries known to be in / out).
dptrain_cli_error_test(AuditCanariesMissing "error: give --canaries M"
  audit --steps 5)
dptrain_cli_error_test(AuditCanariesTooFew "error: --canaries must be in \\[2, 1000000\\], got 1"
  audit --canaries 1)
dptrain_cli_error_test(AuditCanariesNegative "error: --canaries must be in \\[2, 1000000\\], got -5"
  audit --canaries -5)
dptrain_cli_error_test(AuditAlphaOutOfRange "error: --alpha must be in \\(0, 1\\), got 1.5"
  audit --canaries 100 --alpha 1.5)
dptrain_cli_error_test(AuditAlphaZero "error: --alpha must be in \\(0, 1\\), got 0"
  audit --canaries 100 --alpha 0)
dptrain_cli_error_test(AuditMethodUnknown "error: --method must be one-run or fdp, got \"gdp\""
  audit --canaries 100 --method gdp)
dptrain_cli_error_test(AuditStepsZero "error: --steps must be > 0 for an audit, got 0"
  audit --canaries 100 --steps 0)

# A short seeded run: the JSON has the keys the issue asks for.
add_test(NAME Cli.AuditRunPrintsJson
         COMMAND dptrain audit --canaries 200 --real-examples 100 --steps 20 --batch-size 32
                 --noise-multiplier 1 --seed 3 --json)
set_tests_properties(Cli.AuditRunPrintsJson PROPERTIES LABELS fast
  PASS_REGULAR_EXPRESSION
  "{\"epsilon_claimed\":[0-9.e+-]+,\"epsilon_lower_bound\":[0-9.e+-]+,\"violation\":false,\"canaries\":200,\"canaries_included\":[0-9]+,\"alpha\":0.05,")

# Score files: 300 canaries in with scores 1000..1299, 300 out with 0..299 —
# perfectly separated, so every guess is right.
set(audit_dir ${CMAKE_CURRENT_BINARY_DIR}/audit_scores)
set(audit_in "")
set(audit_out "")
foreach(i RANGE 0 299)
  math(EXPR hi "1000 + ${i}")
  string(APPEND audit_in "${hi}\n")
  string(APPEND audit_out "${i}\n")
endforeach()
file(WRITE ${audit_dir}/in.txt "${audit_in}")
file(WRITE ${audit_dir}/out.txt "${audit_out}")
file(WRITE ${audit_dir}/bad.txt "1.5\nabc\n")
# Golden bound: the best default choice is k+ = k- = 200 (k = 10, 20, 50,
# 100, 200: 5 choices), 400 of 400 guesses right; Steinke et al.'s Theorem
# 3.1 at level 0.05/5, m = 600, delta = 1e-5, by bisection in exact Python
# (math.comb) gives 4.42162; ours stops at tolerance 1e-4 below it.
add_test(NAME Cli.AuditBoundFromScoreFiles
         COMMAND dptrain audit bound --in ${audit_dir}/in.txt --out ${audit_dir}/out.txt
                 --delta 1e-5 --alpha 0.05 --json)
set_tests_properties(Cli.AuditBoundFromScoreFiles PROPERTIES LABELS fast
  PASS_REGULAR_EXPRESSION
  "\"epsilon_lower_bound\":4\\.421[5-6].*\"canaries\":600,\"canaries_in\":300,\"canaries_out\":300,\"alpha\":0.05,.*\"k_plus\":200,\"k_minus\":200,\"guesses\":400,\"correct\":400")
add_test(NAME Cli.AuditBoundFdpFromScoreFiles
         COMMAND dptrain audit bound --in ${audit_dir}/in.txt --out ${audit_dir}/out.txt
                 --delta 1e-5 --method fdp)
set_tests_properties(Cli.AuditBoundFdpFromScoreFiles PROPERTIES LABELS fast
  PASS_REGULAR_EXPRESSION "epsilon lower bound \\(fdp\\): [1-9][0-9.]* at delta 1e-05 with confidence 95%")
dptrain_cli_error_test(AuditBoundBadScoreLine "error: .*bad.txt:2: expected a finite number"
  audit bound --in ${audit_dir}/bad.txt --out ${audit_dir}/out.txt --delta 1e-5)
dptrain_cli_error_test(AuditBoundMissingFile "error: .*no_such_scores.txt"
  audit bound --in no_such_scores.txt --out ${audit_dir}/out.txt --delta 1e-5)
dptrain_cli_error_test(AuditBoundMethodUnknown "error: --method must be one-run or fdp, got \"x\""
  audit bound --in ${audit_dir}/in.txt --out ${audit_dir}/out.txt --delta 1e-5 --method x)

# --config: a train TOML's privacy and optimisation keys; its errors name the
# file and key.
file(WRITE ${audit_dir}/run.toml "steps = 7\nbatch-size = 40\nnoise-multiplier = 2\nseed = 5\n")
file(WRITE ${audit_dir}/bad.toml "steps = 7\nbogus = 1\n")
add_test(NAME Cli.AuditConfigFile
         COMMAND dptrain audit --config ${audit_dir}/run.toml --canaries 100 --real-examples 50)
set_tests_properties(Cli.AuditConfigFile PROPERTIES LABELS fast
  PASS_REGULAR_EXPRESSION "audit: 100 Dirac canaries \\([0-9]+ included\\), 7 steps, sample_rate 0.266667, noise_multiplier 2.0000, seeded")
dptrain_cli_error_test(AuditConfigUnknownKey "error: config '.*bad.toml': unknown key 'bogus'"
  audit --config ${audit_dir}/bad.toml --canaries 100)

# --canary-kind input: black-box input-space canaries scored by their final
# loss; the JSON names the kind.
add_test(NAME Cli.AuditInputSpaceCanariesJson
         COMMAND dptrain audit --canaries 200 --real-examples 20 --steps 20 --batch-size 110
                 --noise-multiplier 1 --seed 3 --canary-kind input --json)
set_tests_properties(Cli.AuditInputSpaceCanariesJson PROPERTIES LABELS fast
  PASS_REGULAR_EXPRESSION
  "{\"epsilon_claimed\":[0-9.e+-]+,\"epsilon_lower_bound\":[0-9.e+-]+,\"violation\":(true|false),\"canaries\":200,\"canaries_included\":[0-9]+,\"alpha\":0.05,.*\"method\":\"one-run\",\"canary_kind\":\"input\",")
dptrain_cli_error_test(AuditCanaryKindUnknown "error: --canary-kind must be dirac or input, got \"box\""
  audit --canaries 100 --canary-kind box)
