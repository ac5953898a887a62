#pragma once
/// Models by name: `make_model("wrn-16-4", ModelOptions().num_classes(10))`.
/// Image models: cnn, mlp, wrn-D-K (any D = 6n + 4, K ≥ 1),
/// nf-resnet-{50,101,152,200}, nfnet-f0 … nfnet-f7. Sequence models (built
/// with Griffin(griffin_config(name))): griffin-tiny, hawk-tiny, griffin-25m,
/// hawk-25m, recurrentgemma-2b. Diffusion models (built with
/// UNet(unet_config(name))): unet-dpdm, unet-small, unet-32, unet-64.
/// model_info and list_all_models know all three kinds.

#include <torch/arg.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dptrain/models/image_classifier.h"

namespace dptrain::models {

/// Options common to every model; 0 means "the model's default".
struct ModelOptions {
  /// Output classes (default 10 for cnn/mlp/wrn, 1000 for NF models).
  TORCH_ARG(int64_t, num_classes) = 0;
  /// Input channels (default 1 for cnn/mlp, 3 otherwise).
  TORCH_ARG(int64_t, in_channels) = 0;
  /// Input height = width (default 28 for cnn/mlp, 32 for wrn, the
  /// published training size for NF models). Fixes the size only for cnn
  /// and mlp; the others accept any size.
  TORCH_ARG(int64_t, image_size) = 0;
  /// Dropout before the classifier (wrn and NF models); 0 = off (DP).
  TORCH_ARG(double, dropout) = 0.0;
  /// Largest stochastic-depth rate (NF models); 0 = off (DP).
  TORCH_ARG(double, stochastic_depth) = 0.0;
};

/// What a name resolves to, computed without building the model.
struct ModelInfo {
  std::string name;  ///< canonical name, e.g. "wrn-16-4"
  /// "image" (an ImageClassifier), "sequence" (a Griffin / Hawk LM) or
  /// "diffusion" (a UNet).
  std::string kind = "image";
  /// "cnn", "mlp", "feature-cnn", "wrn", "nf-resnet", "nfnet"; "griffin",
  /// "hawk" or "recurrentgemma" for sequence models; "unet" for diffusion
  /// models.
  std::string family;
  std::string description;  ///< one line
  int64_t num_classes = 0;
  int64_t in_channels = 0;
  int64_t image_size = 0;
  int64_t vocab_size = 0;  ///< sequence models only
  int64_t parameters =
      0;  ///< exact count, from the configuration (tied embedding once)
  /// Architecture summary, one line per stage or layer.
  std::vector<std::string> summary;
};

/// Builds the named model on the CPU in float32 (move it with ->to()).
/// Throws std::invalid_argument for an unknown name (listing the known
/// ones) or a bad option (naming it).
std::shared_ptr<ImageClassifier> make_model(const std::string& name,
                                            const ModelOptions& options = {});

/// Describes the named model, image or sequence, without allocating it (fast
/// even for F7 and recurrentgemma-2b). The options apply to image models
/// only. Throws std::invalid_argument for an unknown name, listing all.
ModelInfo model_info(const std::string& name, const ModelOptions& options = {});

/// Canonical names of the image models make_model builds (wrn-D-K listed
/// for the published D, K only).
std::vector<std::string> list_models();

/// Names of the sequence models (griffin_config_names()).
std::vector<std::string> list_sequence_models();

/// Names of the diffusion models (unet_config_names()).
std::vector<std::string> list_diffusion_models();

/// Every model: list_models(), list_sequence_models(), then
/// list_diffusion_models().
std::vector<std::string> list_all_models();

}  // namespace dptrain::models
