// The translation unit that the shared <torch/torch.h> precompiled headers
// (dptrain_add_torch_pch in DptrainHelpers.cmake) are built for. It is never
// linked into anything.
