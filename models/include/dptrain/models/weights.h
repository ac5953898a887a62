#pragma once
/// Saving and loading a model's weights by module path, in HDF5 or in
/// LibTorch's own serialisation. Loading is all-or-nothing: every tensor is
/// read and checked first, and the model is changed only if all match.
///
/// HDF5 layout (format "dptrain-weights", version 1):
///   root attributes: `dptrain_format` = "dptrain-weights" (string),
///                    `dptrain_format_version` = 1 (int)
///   one dataset per parameter and buffer, float32, its tensor's shape (a
///   scalar is a rank-0 dataset), named by its module path as
///   Module::named_parameters() spells it: "stages.0.0.conv0.weight".
///   The loader also accepts nested groups ("stages/0/0/conv0/weight" is the
///   same name) and any floating-point dataset type, so converters may write
///   either; the root attributes are optional on load.
/// LibTorch format: exactly what torch::save(module, path) writes (nested
/// archives per submodule), so torch::load(module, path) also reads it.

#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace dptrain::models {

/// What a load matched and skipped.
struct LoadReport {
  std::vector<std::string> loaded;   ///< names copied into the model
  std::vector<std::string> skipped;  ///< names matching `exclude`
};

/// Options of the loaders.
struct LoadOptions {
  /// ECMAScript regex; names it matches (std::regex_search) are neither
  /// required nor loaded, e.g. "^classifier\\." to keep a fresh head.
  std::string exclude;
};

/// Writes every parameter and buffer of `module` to `path` (HDF5). The
/// writers go through a temporary file beside `path` renamed over it, so an
/// existing file is only ever replaced by a complete one. Throws
/// std::invalid_argument naming the file on an I/O error.
void save_weights_hdf5(const torch::nn::Module& module,
                       const std::string& path);

/// Reads weights written in the layout above into `module` (converted to
/// each tensor's dtype and device). Throws std::invalid_argument listing,
/// by name, every missing, unexpected and mis-shaped tensor, and leaves the
/// model unchanged in that case.
LoadReport load_weights_hdf5(torch::nn::Module& module, const std::string& path,
                             const LoadOptions& options = {});

/// torch::save of the module's parameters and buffers.
void save_weights_torch(const torch::nn::Module& module,
                        const std::string& path);

/// Reads a torch::save file with the same checks and all-or-nothing
/// behaviour as load_weights_hdf5.
LoadReport load_weights_torch(torch::nn::Module& module,
                              const std::string& path,
                              const LoadOptions& options = {});

/// By extension: ".h5"/".hdf5" → HDF5, ".pt"/".pth" → LibTorch; throws
/// std::invalid_argument for another extension.
void save_weights(const torch::nn::Module& module, const std::string& path);
LoadReport load_weights(torch::nn::Module& module, const std::string& path,
                        const LoadOptions& options = {});

}  // namespace dptrain::models
