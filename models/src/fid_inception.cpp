#include "dptrain/models/fid_inception.h"

#include <torch/torch.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dptrain::models {
namespace {

namespace F = torch::nn::functional;

/// conv (no bias) → BatchNorm(eps 0.001) → ReLU, torchvision's BasicConv2d.
class BasicConvImpl : public torch::nn::Module {
 public:
  BasicConvImpl(int64_t in, int64_t out, std::vector<int64_t> kernel,
                std::vector<int64_t> stride = {1, 1},
                std::vector<int64_t> padding = {0, 0}) {
    conv_ = register_module(
        "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                      .stride(stride)
                                      .padding(padding)
                                      .bias(false)));
    bn_ = register_module(
        "bn",
        torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(0.001)));
  }
  at::Tensor forward(const at::Tensor& x) {
    return torch::relu(bn_->forward(conv_->forward(x)));
  }

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(BasicConv);

BasicConv square(int64_t in, int64_t out, int64_t k, int64_t stride = 1,
                 int64_t padding = 0) {
  return BasicConv(in, out, std::vector<int64_t>{k, k},
                   std::vector<int64_t>{stride, stride},
                   std::vector<int64_t>{padding, padding});
}
BasicConv row(int64_t in, int64_t out, int64_t k) {  // 1×k, "same" padding
  return BasicConv(in, out, std::vector<int64_t>{1, k},
                   std::vector<int64_t>{1, 1},
                   std::vector<int64_t>{0, (k - 1) / 2});
}
BasicConv column(int64_t in, int64_t out, int64_t k) {  // k×1
  return BasicConv(in, out, std::vector<int64_t>{k, 1},
                   std::vector<int64_t>{1, 1},
                   std::vector<int64_t>{(k - 1) / 2, 0});
}

at::Tensor fid_avg_pool(const at::Tensor& x) {  // 3×3, s1, p1, no pad count
  return F::avg_pool2d(
      x,
      F::AvgPool2dFuncOptions(3).stride(1).padding(1).count_include_pad(false));
}
at::Tensor max_pool_3x3_s2(const at::Tensor& x) {
  return F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2));
}

/// A block whose branches are BasicConv chains registered by name.
class BlockBase : public torch::nn::Module {
 protected:
  BasicConv add(const std::string& name, BasicConv conv) {
    return register_module(name, std::move(conv));
  }
};

class FidInceptionAImpl : public BlockBase {
 public:
  FidInceptionAImpl(int64_t in, int64_t pool_features)
      : b1x1_(add("branch1x1", square(in, 64, 1))),
        b5x5_1_(add("branch5x5_1", square(in, 48, 1))),
        b5x5_2_(add("branch5x5_2", square(48, 64, 5, 1, 2))),
        b3dbl_1_(add("branch3x3dbl_1", square(in, 64, 1))),
        b3dbl_2_(add("branch3x3dbl_2", square(64, 96, 3, 1, 1))),
        b3dbl_3_(add("branch3x3dbl_3", square(96, 96, 3, 1, 1))),
        pool_(add("branch_pool", square(in, pool_features, 1))) {}
  at::Tensor forward(const at::Tensor& x) {
    return torch::cat(
        {b1x1_->forward(x), b5x5_2_->forward(b5x5_1_->forward(x)),
         b3dbl_3_->forward(b3dbl_2_->forward(b3dbl_1_->forward(x))),
         pool_->forward(fid_avg_pool(x))},
        1);
  }

 private:
  BasicConv b1x1_, b5x5_1_, b5x5_2_, b3dbl_1_, b3dbl_2_, b3dbl_3_, pool_;
};
TORCH_MODULE(FidInceptionA);

class InceptionBImpl : public BlockBase {
 public:
  explicit InceptionBImpl(int64_t in)
      : b3x3_(add("branch3x3", square(in, 384, 3, 2))),
        b3dbl_1_(add("branch3x3dbl_1", square(in, 64, 1))),
        b3dbl_2_(add("branch3x3dbl_2", square(64, 96, 3, 1, 1))),
        b3dbl_3_(add("branch3x3dbl_3", square(96, 96, 3, 2))) {}
  at::Tensor forward(const at::Tensor& x) {
    return torch::cat(
        {b3x3_->forward(x),
         b3dbl_3_->forward(b3dbl_2_->forward(b3dbl_1_->forward(x))),
         max_pool_3x3_s2(x)},
        1);
  }

 private:
  BasicConv b3x3_, b3dbl_1_, b3dbl_2_, b3dbl_3_;
};
TORCH_MODULE(InceptionB);

class FidInceptionCImpl : public BlockBase {
 public:
  FidInceptionCImpl(int64_t in, int64_t c7)
      : b1x1_(add("branch1x1", square(in, 192, 1))),
        b7_1_(add("branch7x7_1", square(in, c7, 1))),
        b7_2_(add("branch7x7_2", row(c7, c7, 7))),
        b7_3_(add("branch7x7_3", column(c7, 192, 7))),
        b7dbl_1_(add("branch7x7dbl_1", square(in, c7, 1))),
        b7dbl_2_(add("branch7x7dbl_2", column(c7, c7, 7))),
        b7dbl_3_(add("branch7x7dbl_3", row(c7, c7, 7))),
        b7dbl_4_(add("branch7x7dbl_4", column(c7, c7, 7))),
        b7dbl_5_(add("branch7x7dbl_5", row(c7, 192, 7))),
        pool_(add("branch_pool", square(in, 192, 1))) {}
  at::Tensor forward(const at::Tensor& x) {
    auto d = b7dbl_1_->forward(x);
    d = b7dbl_5_->forward(
        b7dbl_4_->forward(b7dbl_3_->forward(b7dbl_2_->forward(d))));
    return torch::cat(
        {b1x1_->forward(x), b7_3_->forward(b7_2_->forward(b7_1_->forward(x))),
         d, pool_->forward(fid_avg_pool(x))},
        1);
  }

 private:
  BasicConv b1x1_, b7_1_, b7_2_, b7_3_, b7dbl_1_, b7dbl_2_, b7dbl_3_, b7dbl_4_,
      b7dbl_5_, pool_;
};
TORCH_MODULE(FidInceptionC);

class InceptionDImpl : public BlockBase {
 public:
  explicit InceptionDImpl(int64_t in)
      : b3_1_(add("branch3x3_1", square(in, 192, 1))),
        b3_2_(add("branch3x3_2", square(192, 320, 3, 2))),
        b7_1_(add("branch7x7x3_1", square(in, 192, 1))),
        b7_2_(add("branch7x7x3_2", row(192, 192, 7))),
        b7_3_(add("branch7x7x3_3", column(192, 192, 7))),
        b7_4_(add("branch7x7x3_4", square(192, 192, 3, 2))) {}
  at::Tensor forward(const at::Tensor& x) {
    return torch::cat(
        {b3_2_->forward(b3_1_->forward(x)),
         b7_4_->forward(b7_3_->forward(b7_2_->forward(b7_1_->forward(x)))),
         max_pool_3x3_s2(x)},
        1);
  }

 private:
  BasicConv b3_1_, b3_2_, b7_1_, b7_2_, b7_3_, b7_4_;
};
TORCH_MODULE(InceptionD);

/// FIDInceptionE_1 (average pool) or FIDInceptionE_2 (max pool, the TF
/// graph's quirk in its last block).
class FidInceptionEImpl : public BlockBase {
 public:
  FidInceptionEImpl(int64_t in, bool max_pool)
      : max_pool_(max_pool),
        b1x1_(add("branch1x1", square(in, 320, 1))),
        b3_1_(add("branch3x3_1", square(in, 384, 1))),
        b3_2a_(add("branch3x3_2a", row(384, 384, 3))),
        b3_2b_(add("branch3x3_2b", column(384, 384, 3))),
        b3dbl_1_(add("branch3x3dbl_1", square(in, 448, 1))),
        b3dbl_2_(add("branch3x3dbl_2", square(448, 384, 3, 1, 1))),
        b3dbl_3a_(add("branch3x3dbl_3a", row(384, 384, 3))),
        b3dbl_3b_(add("branch3x3dbl_3b", column(384, 384, 3))),
        pool_(add("branch_pool", square(in, 192, 1))) {}
  at::Tensor forward(const at::Tensor& x) {
    const auto b3 = b3_1_->forward(x);
    const auto d = b3dbl_2_->forward(b3dbl_1_->forward(x));
    const auto pooled =
        max_pool_
            ? F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(1).padding(1))
            : fid_avg_pool(x);
    return torch::cat(
        {b1x1_->forward(x), b3_2a_->forward(b3), b3_2b_->forward(b3),
         b3dbl_3a_->forward(d), b3dbl_3b_->forward(d), pool_->forward(pooled)},
        1);
  }

 private:
  bool max_pool_;
  BasicConv b1x1_, b3_1_, b3_2a_, b3_2b_, b3dbl_1_, b3dbl_2_, b3dbl_3a_,
      b3dbl_3b_, pool_;
};
TORCH_MODULE(FidInceptionE);

}  // namespace

namespace {
// Appends `module` under `name` and its forward as the next stage.
template <typename M>
void stage(torch::nn::Module& owner,
           std::vector<std::function<at::Tensor(const at::Tensor&)>>& stages,
           const std::string& name, M module) {
  owner.register_module(name, module);
  stages.push_back(
      [module](const at::Tensor& x) mutable { return module->forward(x); });
}
}  // namespace

FidInceptionV3Impl::FidInceptionV3Impl(FidInceptionOptions options_)
    : options(options_) {
  auto& s = stages_;
  stage(*this, s, "Conv2d_1a_3x3", square(3, 32, 3, 2));
  stage(*this, s, "Conv2d_2a_3x3", square(32, 32, 3));
  stage(*this, s, "Conv2d_2b_3x3", square(32, 64, 3, 1, 1));
  s.emplace_back(max_pool_3x3_s2);
  stage(*this, s, "Conv2d_3b_1x1", square(64, 80, 1));
  stage(*this, s, "Conv2d_4a_3x3", square(80, 192, 3));
  s.emplace_back(max_pool_3x3_s2);
  stage(*this, s, "Mixed_5b", FidInceptionA(192, 32));
  stage(*this, s, "Mixed_5c", FidInceptionA(256, 64));
  stage(*this, s, "Mixed_5d", FidInceptionA(288, 64));
  stage(*this, s, "Mixed_6a", InceptionB(288));
  stage(*this, s, "Mixed_6b", FidInceptionC(768, 128));
  stage(*this, s, "Mixed_6c", FidInceptionC(768, 160));
  stage(*this, s, "Mixed_6d", FidInceptionC(768, 160));
  stage(*this, s, "Mixed_6e", FidInceptionC(768, 192));
  stage(*this, s, "Mixed_7a", InceptionD(768));
  stage(*this, s, "Mixed_7b", FidInceptionE(1280, false));
  stage(*this, s, "Mixed_7c", FidInceptionE(2048, true));
  fc_ = register_module("fc", torch::nn::Linear(2048, 1008));
}

at::Tensor FidInceptionV3Impl::forward(const at::Tensor& images) {
  if (!images.defined() || images.dim() != 4 ||
      (images.size(1) != 3 && images.size(1) != 1)) {
    throw std::invalid_argument(
        "FidInceptionV3: images [N, 3, H, W] or [N, 1, H, W] expected, got " +
        (images.defined() ? c10::str(images.sizes()) : std::string("none")));
  }
  auto x = images.size(1) == 1 ? images.repeat({1, 3, 1, 1}) : images;
  if (options.resize_input) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{299, 299})
                              .mode(torch::kBilinear)
                              .align_corners(false));
  } else if (x.size(2) < 75 || x.size(3) < 75) {
    throw std::invalid_argument(
        "FidInceptionV3: without resize_input images must be at least "
        "75x75, got " +
        c10::str(x.sizes()));
  }
  if (options.normalize_input) x = 2.0 * x - 1.0;
  for (auto& f : stages_) x = f(x);
  return x.mean({2, 3});  // global average pool → [N, 2048]
}

at::Tensor FidInceptionV3Impl::logits(const at::Tensor& features) {
  return fc_->forward(features);
}

LoadReport load_fid_inception_weights(FidInceptionV3Impl& model,
                                      const std::string& path) {
  LoadOptions o;
  o.exclude = "num_batches_tracked$";
  return load_weights(model, path, o);
}

}  // namespace dptrain::models
