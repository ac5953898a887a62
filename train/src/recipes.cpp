#include "dptrain/train/recipes.h"

#include <vector>

namespace dptrain::train {

const Recipe* find_recipe(const std::string& model) {
  static const std::vector<Recipe> recipes = {
      {"cnn",
       "configs/fashion_mnist_cnn_eps3_10epochs.toml (Tramer & Boneh 2021's "
       "settings, batch 1024 for 10 epochs)",
       "--batch-size 1024 --max-physical-batch-size 1024 --optimizer sgd --lr "
       "4 --momentum 0.9 "
       "--max-grad-norm 0.1 --ema-decay 0.999",
       [](TrainConfig& c) {
         c.batch_size = 1024;
         c.max_physical_batch_size = 1024;
         c.optimizer = "sgd";
         c.lr = 4.0;
         c.momentum = 0.9;
         c.max_grad_norm = 0.1;
         c.ema_decay = 0.999;
       },
       10},
      {"wrn-16-4", "configs/cifar10_wrn16_4_eps8.toml (De et al. 2022)",
       "--batch-size 4096 --optimizer sgd --lr 2 --momentum 0 --max-grad-norm "
       "1 "
       "--normalize-clipped --augmult 16 --ema-decay 0.999",
       [](TrainConfig& c) {
         c.batch_size = 4096;
         c.optimizer = "sgd";
         c.lr = 2.0;
         c.momentum = 0.0;
         c.max_grad_norm = 1.0;
         c.normalize_clipped = true;
         c.augmult = 16;
         c.ema_decay = 0.999;
       },
       205},  // the config's 2500 steps at q = 4096/50000
  };
  for (const auto& r : recipes) {
    if (r.model == model) return &r;
  }
  return nullptr;
}

}  // namespace dptrain::train
