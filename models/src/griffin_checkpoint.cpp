// Published RecurrentGemma (PyTorch reference) parameter names and layouts,
// and HDF5 checkpoints holding one dataset per name.
#include <hdf5.h>
#include <torch/torch.h>

#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "dptrain/models/griffin.h"
#include "hdf5_handle.h"

namespace dptrain::models {
namespace {

// A published parameter: how to read it from the model in the published
// layout and how to write a published-layout tensor back.
struct CheckpointEntry {
  std::string name;
  std::function<torch::Tensor()> get;
  std::function<void(const torch::Tensor&)> set;
};

void assign(const torch::Tensor& dst, const torch::Tensor& src) {
  torch::NoGradGuard no_grad;
  dst.copy_(src.to(dst.options().requires_grad(false)));
}

CheckpointEntry plain(const std::string& name, torch::Tensor param) {
  return {name, [param] { return param.detach().clone(); },
          [param](const torch::Tensor& t) { assign(param, t); }};
}

// Linear weights as the reference stores them ([out, in], nn.Linear).
void add_linear(std::vector<CheckpointEntry>& out, const std::string& prefix,
                const dp::LinearImpl& l) {
  out.push_back(plain(prefix + ".weight", l.weight));
  if (l.bias.defined()) out.push_back(plain(prefix + ".bias", l.bias));
}

// BlockDiagonalLinear: w [H, bw, bw] with y_h = x_h · w[h]; b [H, bw].
void add_block_diagonal(std::vector<CheckpointEntry>& out,
                        const std::string& prefix, torch::nn::ModuleList list) {
  std::vector<dp::LinearImpl*> layers;
  for (const auto& module : *list)
    layers.push_back(module->as<dp::LinearImpl>());
  auto linear = [layers](size_t h) { return layers[h]; };
  const size_t n = layers.size();
  out.push_back({prefix + ".w",
                 [=] {
                   std::vector<torch::Tensor> ws;
                   for (size_t h = 0; h < n; ++h) {
                     ws.push_back(linear(h)->weight.detach().t());
                   }
                   return torch::stack(ws).contiguous();
                 },
                 [=](const torch::Tensor& t) {
                   for (size_t h = 0; h < n; ++h) {
                     assign(linear(h)->weight,
                            t.select(0, static_cast<int64_t>(h)).t());
                   }
                 }});
  out.push_back({prefix + ".b",
                 [=] {
                   std::vector<torch::Tensor> bs;
                   for (size_t h = 0; h < n; ++h) {
                     bs.push_back(linear(h)->bias.detach());
                   }
                   return torch::stack(bs).contiguous();
                 },
                 [=](const torch::Tensor& t) {
                   for (size_t h = 0; h < n; ++h) {
                     assign(linear(h)->bias,
                            t.select(0, static_cast<int64_t>(h)));
                   }
                 }});
}

std::vector<CheckpointEntry> entries(GriffinImpl& m) {
  std::vector<CheckpointEntry> out;
  out.push_back(plain("embedder.input_embedding", m.embedder->weight));
  for (size_t i = 0; i < m.blocks->size(); ++i) {
    auto* b = m.blocks[i]->as<ResidualBlockImpl>();
    const std::string p = "blocks." + std::to_string(i) + ".";
    out.push_back(
        plain(p + "temporal_pre_norm.scale", b->temporal_pre_norm->scale));
    out.push_back(
        plain(p + "channel_pre_norm.scale", b->channel_pre_norm->scale));
    if (b->type == TemporalBlockType::kRecurrent) {
      auto r = b->recurrent_block;
      const std::string q = p + "recurrent_block.";
      add_linear(out, q + "linear_y", *r->linear_y);
      add_linear(out, q + "linear_x", *r->linear_x);
      add_linear(out, q + "linear_out", *r->linear_out);
      // Reference Conv1D: w [K, L], w[K−1] weighs the current input; ours
      // is [L, 1, K] with the causal padding on the left: the same order.
      auto conv = r->conv_1d;
      out.push_back(
          {q + "conv_1d.w",
           [conv] { return conv->weight.detach().squeeze(1).t().contiguous(); },
           [conv](const torch::Tensor& t) {
             assign(conv->weight, t.t().unsqueeze(1));
           }});
      out.push_back(plain(q + "conv_1d.b", conv->bias));
      out.push_back(plain(q + "rg_lru.a_param", r->rg_lru->a_param->param));
      add_block_diagonal(out, q + "rg_lru.input_gate", r->rg_lru->input_gate);
      add_block_diagonal(out, q + "rg_lru.a_gate", r->rg_lru->a_gate);
    } else {
      auto a = b->attention_block;
      const std::string q = p + "attention_block.";
      add_linear(out, q + "proj_q", *a->proj_q);
      add_linear(out, q + "proj_k", *a->proj_k);
      add_linear(out, q + "proj_v", *a->proj_v);
      add_linear(out, q + "proj_final", *a->proj_final);
    }
    // Reference Einsum "...td,cdD->c...tD": w [2, W, E], b [2, 1, 1, E];
    // index 0 is the GELU gate.
    auto mlp = b->mlp_block;
    out.push_back({p + "mlp_block.ffw_up.w",
                   [mlp] {
                     return torch::stack({mlp->ffw_gate->weight.detach().t(),
                                          mlp->ffw_up->weight.detach().t()})
                         .contiguous();
                   },
                   [mlp](const torch::Tensor& t) {
                     assign(mlp->ffw_gate->weight, t.select(0, 0).t());
                     assign(mlp->ffw_up->weight, t.select(0, 1).t());
                   }});
    out.push_back({p + "mlp_block.ffw_up.b",
                   [mlp] {
                     const int64_t e = mlp->ffw_up->bias.size(0);
                     return torch::stack({mlp->ffw_gate->bias.detach(),
                                          mlp->ffw_up->bias.detach()})
                         .view({2, 1, 1, e})
                         .contiguous();
                   },
                   [mlp](const torch::Tensor& t) {
                     assign(mlp->ffw_gate->bias, t.select(0, 0).reshape({-1}));
                     assign(mlp->ffw_up->bias, t.select(0, 1).reshape({-1}));
                   }});
    add_linear(out, p + "mlp_block.ffw_down", *mlp->ffw_down);
  }
  out.push_back(plain("final_norm.scale", m.final_norm->scale));
  return out;
}

using detail::Handle;

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> published_parameters(
    const GriffinImpl& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& e : entries(const_cast<GriffinImpl&>(model))) {
    out.emplace_back(e.name, e.get().to(torch::kCPU));
  }
  return out;
}

void load_published_parameters(
    GriffinImpl& model,
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::unordered_map<std::string, const torch::Tensor*> by_name;
  for (const auto& [name, t] : tensors) by_name[name] = &t;
  auto list = entries(model);
  // Check everything before changing anything.
  for (const auto& e : list) {
    auto it = by_name.find(e.name);
    if (it == by_name.end()) {
      throw std::invalid_argument("Griffin checkpoint: missing parameter '" +
                                  e.name + "'");
    }
    const auto expected = e.get().sizes().vec();
    if (it->second->sizes().vec() != expected) {
      throw std::invalid_argument(
          "Griffin checkpoint: parameter '" + e.name + "' has shape " +
          c10::str(it->second->sizes()) + ", the model expects " +
          c10::str(at::IntArrayRef(expected)));
    }
  }
  for (const auto& e : list) e.set(*by_name.at(e.name));
}

void save_griffin_hdf5(const GriffinImpl& model, const std::string& path) {
  Handle file{H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
              H5Fclose};
  if (!file.ok()) {
    throw std::runtime_error("cannot create HDF5 file '" + path + "'");
  }
  for (const auto& [name, tensor] : published_parameters(model)) {
    const auto t = tensor.to(torch::kFloat).contiguous();
    std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
    Handle space{
        H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
        H5Sclose};
    Handle set{H5Dcreate2(file.get(), name.c_str(), H5T_IEEE_F32LE, space.get(),
                          H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               H5Dclose};
    if (!space.ok() || !set.ok() ||
        H5Dwrite(set.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                 t.data_ptr<float>()) < 0) {
      throw std::runtime_error("cannot write dataset '" + name + "' to '" +
                               path + "'");
    }
  }
}

void load_griffin_hdf5(GriffinImpl& model, const std::string& path) {
  if (!std::ifstream(path).good()) {
    throw std::runtime_error("cannot open Griffin checkpoint '" + path + "'");
  }
  Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (!file.ok()) {
    throw std::runtime_error("'" + path + "' is not an HDF5 file");
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, current] : published_parameters(model)) {
    if (H5Lexists(file.get(), name.c_str(), H5P_DEFAULT) <= 0) {
      throw std::invalid_argument("Griffin checkpoint '" + path +
                                  "': missing dataset '" + name + "'");
    }
    Handle set{H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose};
    Handle space{H5Dget_space(set.get()), H5Sclose};
    const int rank = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    std::vector<int64_t> shape(dims.begin(), dims.end());
    if (shape != current.sizes().vec()) {
      throw std::invalid_argument(
          "Griffin checkpoint '" + path + "': dataset '" + name +
          "' has shape " + c10::str(at::IntArrayRef(shape)) +
          ", the model expects " + c10::str(current.sizes()));
    }
    auto buffer = torch::empty(shape, torch::kDouble);
    if (H5Dread(set.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                buffer.data_ptr<double>()) < 0) {
      throw std::runtime_error("cannot read dataset '" + name + "' of '" +
                               path + "' as floating point");
    }
    tensors.emplace_back(name, buffer);
  }
  load_published_parameters(model, tensors);
}

}  // namespace dptrain::models
