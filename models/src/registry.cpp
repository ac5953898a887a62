#include "dptrain/models/registry.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "dptrain/models/feature_cnn.h"
#include "dptrain/models/griffin_config.h"
#include "dptrain/models/nf_resnet.h"
#include "dptrain/models/nfnet.h"
#include "dptrain/models/small_models.h"
#include "dptrain/models/unet.h"
#include "dptrain/models/wide_resnet.h"

namespace dptrain::models {
namespace {

int64_t or_default(int64_t value, int64_t fallback) {
  return value != 0 ? value : fallback;
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void check_options(const ModelOptions& o) {
  if (o.num_classes() < 0) {
    throw std::invalid_argument("num_classes must be >= 1, got " +
                                std::to_string(o.num_classes()));
  }
  if (o.in_channels() < 0) {
    throw std::invalid_argument("in_channels must be >= 1, got " +
                                std::to_string(o.in_channels()));
  }
  if (o.image_size() < 0) {
    throw std::invalid_argument("image_size must be >= 1, got " +
                                std::to_string(o.image_size()));
  }
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return "[" + s + "]";
}

// A resolved name: its info and a factory.
struct Resolved {
  ModelInfo info;
  std::function<std::shared_ptr<ImageClassifier>()> build;
};

Resolved resolve_cnn(const ModelOptions& o) {
  auto opt = TanhCnnOptions()
                 .num_classes(or_default(o.num_classes(), 10))
                 .in_channels(or_default(o.in_channels(), 1))
                 .image_size(or_default(o.image_size(), 28));
  const int64_t side = TanhCnnImpl::feature_side(opt.image_size());
  const int64_t flat = opt.conv2_channels() * side * side;
  Resolved r;
  r.info.family = "cnn";
  r.info.description =
      "tanh CNN of Papernot et al. 2021 (Tramèr & Boneh 2021 end-to-end CNN)";
  r.info.parameters =
      opt.conv1_channels() * opt.in_channels() * 64 + opt.conv1_channels() +
      opt.conv2_channels() * opt.conv1_channels() * 16 + opt.conv2_channels() +
      flat * opt.hidden() + opt.hidden() + opt.hidden() * opt.num_classes() +
      opt.num_classes();
  r.info.summary = {
      "conv1 Conv2d(" + std::to_string(opt.in_channels()) +
          "->16, 8x8, stride 2, pad 2) -> tanh -> MaxPool(2, stride 1)",
      "conv2 Conv2d(16->32, 4x4, stride 2) -> tanh -> MaxPool(2, stride 1)",
      "fc1 Linear(" + std::to_string(flat) + "->32) -> tanh",
      "classifier Linear(32->" + std::to_string(opt.num_classes()) + ")"};
  r.info.num_classes = opt.num_classes();
  r.info.in_channels = opt.in_channels();
  r.info.image_size = opt.image_size();
  r.build = [opt] { return std::make_shared<TanhCnnImpl>(opt); };
  return r;
}

Resolved resolve_feature_cnn(const ModelOptions& o) {
  auto opt = FeatureCnnOptions()
                 .num_classes(or_default(o.num_classes(), 10))
                 .in_channels(or_default(o.in_channels(), 1));
  const int64_t c = opt.width(), in = opt.in_channels();
  Resolved r;
  r.info.family = "feature-cnn";
  r.info.description =
      "small ReLU CNN whose pooled penultimate layer gives FID-style "
      "features (train on public data; not comparable with papers' FIDs)";
  r.info.parameters = in * c * 9 + c + c * 2 * c * 9 + 2 * c +
                      2 * c * 4 * c * 9 + 4 * c + 4 * c * opt.num_classes() +
                      opt.num_classes();
  r.info.summary = {
      "conv1 Conv2d(" + std::to_string(in) + "->" + std::to_string(c) +
          ", 3x3, pad 1) -> ReLU -> MaxPool(2)",
      "conv2 Conv2d(" + std::to_string(c) + "->" + std::to_string(2 * c) +
          ", 3x3, pad 1) -> ReLU -> MaxPool(2)",
      "conv3 Conv2d(" + std::to_string(2 * c) + "->" + std::to_string(4 * c) +
          ", 3x3, pad 1) -> ReLU -> global mean: the features",
      "classifier Linear(" + std::to_string(4 * c) + "->" +
          std::to_string(opt.num_classes()) + ")"};
  r.info.num_classes = opt.num_classes();
  r.info.in_channels = in;
  r.info.image_size = or_default(o.image_size(), 28);
  r.build = [opt] { return std::make_shared<FeatureCnnImpl>(opt); };
  return r;
}

Resolved resolve_mlp(const ModelOptions& o) {
  auto opt = MlpOptions()
                 .num_classes(or_default(o.num_classes(), 10))
                 .in_channels(or_default(o.in_channels(), 1))
                 .image_size(or_default(o.image_size(), 28));
  Resolved r;
  r.info.family = "mlp";
  r.info.description = "multilayer perceptron, one tanh hidden layer of 256";
  int64_t width = opt.in_channels() * opt.image_size() * opt.image_size();
  int64_t count = 0;
  for (auto h : opt.hidden()) {
    r.info.summary.push_back("hidden Linear(" + std::to_string(width) + "->" +
                             std::to_string(h) + ") -> tanh");
    count += width * h + h;
    width = h;
  }
  count += width * opt.num_classes() + opt.num_classes();
  r.info.summary.push_back("classifier Linear(" + std::to_string(width) + "->" +
                           std::to_string(opt.num_classes()) + ")");
  r.info.parameters = count;
  r.info.num_classes = opt.num_classes();
  r.info.in_channels = opt.in_channels();
  r.info.image_size = opt.image_size();
  r.build = [opt] { return std::make_shared<MlpImpl>(opt); };
  return r;
}

Resolved resolve_wrn(int64_t depth, int64_t width, const ModelOptions& o) {
  auto opt = WideResNetOptions(depth, width)
                 .num_classes(or_default(o.num_classes(), 10))
                 .in_channels(or_default(o.in_channels(), 3))
                 .dropout(o.dropout());
  Resolved r;
  r.info.family = "wrn";
  r.info.description =
      "Wide ResNet of De et al. 2022: WSConv2d (gain, bias), GroupNorm(16), "
      "pre-activation, TF SAME padding";
  r.info.parameters = wide_resnet_parameter_count(opt);
  const int64_t n = opt.blocks_per_stage();
  r.info.summary.push_back("stem WSConv2d(" +
                           std::to_string(opt.in_channels()) + "->16, 3x3)");
  for (int s = 0; s < 3; ++s) {
    r.info.summary.push_back("stage " + std::to_string(s) + ": " +
                             std::to_string(n) + " blocks, width " +
                             std::to_string((16 * width) << s) + ", stride " +
                             (s == 0 ? "1" : "2"));
  }
  r.info.summary.push_back(
      "relu -> final_norm GroupNorm -> mean pool -> classifier Linear(" +
      std::to_string(64 * width) + "->" + std::to_string(opt.num_classes()) +
      ")");
  r.info.num_classes = opt.num_classes();
  r.info.in_channels = opt.in_channels();
  r.info.image_size = or_default(o.image_size(), 32);
  r.build = [opt] { return std::make_shared<WideResNetImpl>(opt); };
  return r;
}

// The ModelOptions of an NF model (NF-ResNet or NFNet options): 1000 classes
// and 3 input channels unless given, dropout and stochastic depth as given.
template <typename NfOptions>
NfOptions with_nf_options(NfOptions opt, const ModelOptions& o) {
  opt.num_classes(or_default(o.num_classes(), 1000))
      .in_channels(or_default(o.in_channels(), 3))
      .dropout(o.dropout())
      .stochastic_depth(o.stochastic_depth());
  return opt;
}

// "stage s: <depth> <blocks>, width <width>", one line per stage.
void add_stage_lines(std::vector<std::string>& summary,
                     const std::vector<int64_t>& depths,
                     const std::vector<int64_t>& widths,
                     const std::string& blocks) {
  for (size_t s = 0; s < depths.size(); ++s) {
    summary.push_back("stage " + std::to_string(s) + ": " +
                      std::to_string(depths[s]) + " " + blocks + ", width " +
                      std::to_string(widths[s]));
  }
}

Resolved resolve_nf_resnet(int64_t depth, const ModelOptions& o) {
  // skip_init_gain 1 as JAX Privacy's ImageNet DP config (De et al. 2022).
  auto opt = with_nf_options(nf_resnet_variant(depth).skip_init_gain(1.0), o);
  Resolved r;
  r.info.family = "nf-resnet";
  r.info.description =
      "normaliser-free pre-activation ResNet (Brock et al. 2021): scaled WS "
      "convs, scaled relu, alpha 0.2, skip gains initialised to 1 (JAX "
      "Privacy DP config)";
  r.info.parameters = nf_resnet_parameter_count(opt);
  r.info.summary.push_back(
      "stem WSConv2d(" + std::to_string(opt.in_channels()) +
      "->64, 7x7, stride 2) -> MaxPool(3, stride 2, SAME)");
  add_stage_lines(r.info.summary, opt.depths(), opt.widths(),
                  "bottleneck blocks");
  r.info.summary.push_back(
      "scaled relu -> mean pool -> classifier Linear(2048->" +
      std::to_string(opt.num_classes()) + ")");
  r.info.num_classes = opt.num_classes();
  r.info.in_channels = opt.in_channels();
  r.info.image_size = or_default(o.image_size(), 224);
  r.build = [opt] { return std::make_shared<NFResNetImpl>(opt); };
  return r;
}

Resolved resolve_nfnet(const std::string& variant, const ModelOptions& o) {
  auto opt = with_nf_options(nfnet_variant(variant), o);
  Resolved r;
  r.info.family = "nfnet";
  r.info.description = "NFNet-" + variant +
                       " (Brock et al. 2021): scaled WS convs, scaled "
                       "gelu, grouped 3x3 convs, squeeze-excite, alpha 0.2";
  r.info.parameters = nfnet_parameter_count(opt);
  r.info.summary.push_back(
      "stem 4 WSConv2d 3x3 (16, 32, 64, 128; strides 2, 1, 1, 2)");
  add_stage_lines(r.info.summary, opt.depths(), opt.widths(), "NF blocks");
  r.info.summary.push_back(
      "final_conv WSConv2d(1536->3072, 1x1) -> mean pool -> classifier "
      "Linear(3072->" +
      std::to_string(opt.num_classes()) + ")");
  r.info.summary.push_back("published train/test sizes " +
                           std::to_string(opt.train_image_size()) + "/" +
                           std::to_string(opt.test_image_size()) + "; depths " +
                           join(opt.depths()));
  r.info.num_classes = opt.num_classes();
  r.info.in_channels = opt.in_channels();
  r.info.image_size = or_default(o.image_size(), opt.train_image_size());
  r.build = [opt] { return std::make_shared<NFNetImpl>(opt); };
  return r;
}

Resolved resolve(const std::string& raw_name, const ModelOptions& o) {
  check_options(o);
  const std::string name = lower(raw_name);
  std::smatch m;
  Resolved r;
  bool found = true;
  if (name == "cnn") {
    r = resolve_cnn(o);
  } else if (name == "mlp") {
    r = resolve_mlp(o);
  } else if (name == "feature-cnn") {
    r = resolve_feature_cnn(o);
  } else if (std::regex_match(name, m,
                              std::regex("wrn-([0-9]{1,4})-([0-9]{1,4})"))) {
    r = resolve_wrn(std::stoll(m[1]), std::stoll(m[2]), o);
  } else if (std::regex_match(name, m,
                              std::regex("nf-resnet-(50|101|152|200)"))) {
    r = resolve_nf_resnet(std::stoll(m[1]), o);
  } else if (std::regex_match(name, m, std::regex("nfnet-(f[0-7])"))) {
    r = resolve_nfnet("F" + m[1].str().substr(1), o);
  } else {
    found = false;
  }
  if (!found) {
    std::string known;
    for (const auto& n : list_all_models())
      known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown model '" + raw_name +
                                "'; known: " + known +
                                " (and wrn-D-K for any D = 6n+4, K >= 1)");
  }
  r.info.name = name;
  if (r.info.family != "cnn" && r.info.family != "mlp" && o.image_size() != 0) {
    r.info.image_size = o.image_size();
  }
  return r;
}

}  // namespace

std::shared_ptr<ImageClassifier> make_model(const std::string& name,
                                            const ModelOptions& options) {
  const auto sequence = list_sequence_models();
  if (std::find(sequence.begin(), sequence.end(), lower(name)) !=
      sequence.end()) {
    throw std::invalid_argument(
        "model '" + name +
        "' is a language model (--task lm), not an image classifier");
  }
  const auto diffusion = list_diffusion_models();
  if (std::find(diffusion.begin(), diffusion.end(), lower(name)) !=
      diffusion.end()) {
    throw std::invalid_argument(
        "model '" + name +
        "' is a diffusion model (build it with UNet(unet_config(name))), not "
        "an image classifier");
  }
  return resolve(name, options).build();
}

namespace {

// A Griffin / Hawk / RecurrentGemma configuration described as ModelInfo.
ModelInfo sequence_info(const GriffinConfig& c) {
  ModelInfo info;
  info.name = c.name;
  info.kind = "sequence";
  int64_t attention = 0;
  for (const auto t : c.block_types)
    attention += t == TemporalBlockType::kAttention;
  info.family = c.name.rfind("recurrentgemma", 0) == 0 ? "recurrentgemma"
                : attention > 0                        ? "griffin"
                                                       : "hawk";
  info.description =
      info.family == "hawk"
          ? "Hawk language model (RG-LRU recurrent blocks only)"
          : "Griffin language model (RG-LRU blocks and local multi-query "
            "attention every third block)";
  info.vocab_size = c.vocab_size;
  info.parameters = count_parameters(c);
  info.summary = {
      "vocabulary " + std::to_string(c.vocab_size) + ", width " +
          std::to_string(c.width) + ", " + std::to_string(c.num_blocks()) +
          " residual blocks (" + std::to_string(c.num_blocks() - attention) +
          " recurrent, " + std::to_string(attention) + " local attention)",
      "RG-LRU width " + std::to_string(c.effective_lru_width()) +
          ", MLP width " + std::to_string(c.effective_mlp_width()) + ", " +
          std::to_string(c.num_heads) + " heads, attention window " +
          std::to_string(c.attention_window),
      "parameters without the tied embedding: " +
          std::to_string(count_parameters(c, /*include_embeddings=*/false))};
  return info;
}

// A UNet configuration described as ModelInfo; the count is of the model
// built once on the CPU (at most a few tens of MB for these configurations).
ModelInfo diffusion_info(const UNetConfig& c) {
  ModelInfo info;
  info.name = c.name;
  info.kind = "diffusion";
  info.family = "unet";
  info.description =
      "class-conditional denoising UNet (GroupNorm, SiLU, self-attention, "
      "noise-level and class embeddings with a null class)";
  info.num_classes = c.num_classes;
  info.in_channels = c.in_channels;
  info.image_size = c.image_size;
  info.parameters = UNet(c)->num_parameters();
  std::string widths, attention;
  for (std::size_t l = 0; l < c.channels.size(); ++l) {
    widths += (l ? "/" : "") + std::to_string(c.channels[l]);
  }
  for (const auto l : c.attention_levels) {
    const int64_t side = c.image_size >> l;
    attention += (attention.empty() ? "" : ", ") + std::to_string(side) + "x" +
                 std::to_string(side);
  }
  info.summary = {
      "widths " + widths + ", " + std::to_string(c.blocks_per_level) +
          " residual block(s) a level, attention at " + attention,
      "embedding width " + std::to_string(c.embedding_width()) + ", " +
          std::to_string(c.attention_heads) + " attention head(s), classes " +
          std::to_string(c.num_classes) + " + null"};
  return info;
}

}  // namespace

ModelInfo model_info(const std::string& name, const ModelOptions& options) {
  const std::string key = lower(name);
  for (const auto& s : list_sequence_models()) {
    if (key == s) return sequence_info(griffin_config(s));
  }
  for (const auto& d : list_diffusion_models()) {
    if (key == d) return diffusion_info(unet_config(d));
  }
  return resolve(name, options).info;
}

std::vector<std::string> list_sequence_models() {
  return griffin_config_names();
}

std::vector<std::string> list_diffusion_models() { return unet_config_names(); }

std::vector<std::string> list_all_models() {
  auto names = list_models();
  for (auto& s : list_sequence_models()) names.push_back(s);
  for (auto& d : list_diffusion_models()) names.push_back(d);
  return names;
}

std::vector<std::string> list_models() {
  // feature-cnn sits before the NF families: `dptrain model list` ends the
  // image models with nfnet-f7 (Cli.ModelListCoversEveryModel).
  return {"cnn",           "mlp",           "wrn-16-4",     "wrn-28-10",
          "wrn-40-4",      "feature-cnn",   "nf-resnet-50", "nf-resnet-101",
          "nf-resnet-152", "nf-resnet-200", "nfnet-f0",     "nfnet-f1",
          "nfnet-f2",      "nfnet-f3",      "nfnet-f4",     "nfnet-f5",
          "nfnet-f6",      "nfnet-f7"};
}

}  // namespace dptrain::models
