// Test input for Layering.CheckerCatchesTorchInAccountant.
#include <ATen/core/Tensor.h>
