# `dptrain account --orders`: every order is checked (count, range) before
# the accountant allocates anything from one; the message names the flag.
# (--orders 1e9 once allocated ~22 GB before it was OOM-killed.)
set(account_run account --sample-rate 0.01 --steps 1000 --noise-multiplier 1
    --delta 1e-5)
dptrain_cli_error_test(AccountOrderAboveLargest
  "error: --orders: order 1000000000 is above the largest supported RDP order 10000"
  ${account_run} --orders 1e9)
dptrain_cli_error_test(AccountOrderJustAboveLargest
  "error: --orders: order 10000.5 is above the largest supported RDP order 10000"
  ${account_run} --orders 2,10000.5)
dptrain_cli_error_test(AccountOrderNotFinite
  "error: --orders: order must be finite and > 1, got inf"
  ${account_run} --orders 2,inf)
dptrain_cli_error_test(AccountOrderNotAboveOne
  "error: --orders: order must be finite and > 1, got 1"
  ${account_run} --orders 1,2)
dptrain_cli_error_test(AccountOrdersNotNumbers
  "error: --orders must be default, opacus or a comma-separated list of numbers, got \"2,x\""
  ${account_run} --orders 2,x)
# 10001 orders (one more than the limit), built here rather than spelled out.
string(REPEAT "2," 10000 too_many_orders)
string(APPEND too_many_orders "2")
dptrain_cli_error_test(AccountTooManyOrders
  "error: --orders: orders lists 10001 orders; at most 10000"
  ${account_run} --orders ${too_many_orders})
