// A fixture for Layering.CheckerCatchesSamplerInOptim: the optimizers are
// post-processing and may not see how batches are sampled.
#include "dptrain/dp/mechanism/poisson_sampler.h"
