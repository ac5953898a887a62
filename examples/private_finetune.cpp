// Private fine-tuning with the C++ API: pre-train the tanh CNN non-privately
// on Fashion-MNIST classes 0-4 (playing the public data), then fine-tune it
// with DP-SGD at epsilon = 1 on classes 5-9 (the private data); then, for
// comparison, train the same CNN from scratch on classes 5-9 at the same
// epsilon and settings.
//   example_private_finetune [fashion-mnist dir]
#include <torch/torch.h>

#include <iostream>

#include "dptrain/datasets/idx_reader.h"
#include "dptrain/datasets/subsets.h"
#include "dptrain/datasets/transforms.h"
#include "dptrain/models/fine_tuning.h"
#include "dptrain/models/registry.h"
#include "dptrain/train/classifier_trainer.h"
#include "dptrain/train/runtime.h"

namespace ds = dptrain::datasets;

// A few epochs of ordinary (non-private) SGD: only allowed on public data.
void pretrain(dptrain::models::ImageClassifier& model,
              const ds::ImageDataset& data, const ds::ChannelStats& stats) {
  torch::optim::SGD sgd(model.parameters(),
                        torch::optim::SGDOptions(0.05).momentum(0.9));
  model.train();
  for (int epoch = 0; epoch < 2; ++epoch) {
    const auto order = ds::seeded_permutation(data.size(), epoch);
    for (std::int64_t start = 0; start < data.size(); start += 128) {
      const auto end = std::min<std::int64_t>(start + 128, data.size());
      auto batch = data.get_batch(std::vector<std::int64_t>(
          order.begin() + start, order.begin() + end));
      auto loss = torch::nn::functional::cross_entropy(
          model.forward(ds::standardize(batch.images, stats)), batch.labels);
      sgd.zero_grad();
      loss.backward();
      sgd.step();
    }
  }
}

// DP-SGD at epsilon = 1 on the private classes.
dptrain::train::FitResult private_fit(
    std::shared_ptr<dptrain::models::ImageClassifier> model,
    const ds::ImageDataset& train, const ds::ImageDataset& test,
    const char* what) {
  std::cout << "== " << what << "\n";
  dptrain::train::TrainConfig config;
  config.dataset =
      "fashion-mnist";  // selects the public normalisation constants
  config.target_epsilon = 1.0;
  config.delta = 1e-5;
  config.epochs = 5;
  config.batch_size = 1024;
  config.max_physical_batch_size = 1024;
  config.max_grad_norm = 0.1;
  config.lr = 2.0;
  config.momentum = 0.9;
  config.ema_decay = 0.99;
  dptrain::train::ClassifierTrainer trainer(std::move(model), config);
  return trainer.fit(train, &test);
}

int main(int argc, char** argv) {
  try {
    dptrain::train::set_num_threads(0);
    const std::string dir = argc > 1 ? argv[1] : ds::kDefaultFashionMnistDir;
    const auto train = ds::load_fashion_mnist(dir, ds::Split::kTrain);
    const auto test = ds::load_fashion_mnist(dir, ds::Split::kTest);
    const auto public_train = ds::subset_by_classes(train, {0, 1, 2, 3, 4});
    const auto private_train = ds::subset_by_classes(train, {5, 6, 7, 8, 9});
    const auto private_test = ds::subset_by_classes(test, {5, 6, 7, 8, 9});

    auto model = dptrain::models::make_model(
        "cnn", dptrain::models::ModelOptions().num_classes(5));
    const auto norm = dptrain::train::input_normalization("fashion-mnist", 1);
    pretrain(*model, public_train, {norm.mean, norm.std});

    // New head for the private task; all layers are fine-tuned.
    model->reset_classifier(5);
    const auto tuned =
        private_fit(model, private_train, private_test, "private fine-tuning");
    auto scratch = dptrain::models::make_model(
        "cnn", dptrain::models::ModelOptions().num_classes(5));
    const auto fresh = private_fit(scratch, private_train, private_test,
                                   "private training from scratch");
    std::cout << "classes 5-9 at epsilon " << tuned.epsilon << ", delta "
              << tuned.delta << ": fine-tuned test accuracy "
              << tuned.test.accuracy << " (EMA " << tuned.ema_test.accuracy
              << "), from scratch " << fresh.test.accuracy << " (EMA "
              << fresh.ema_test.accuracy << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
