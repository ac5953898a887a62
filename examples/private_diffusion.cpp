// Private synthetic data with the C++ API, the steps of `dptrain diffusion`:
// pre-train a small class-conditional UNet NON-privately on Fashion-MNIST
// classes 0-4 (playing the public data), fine-tune it with DP-SGD at
// epsilon = 10 on classes 5-9 (the private data), sample a labelled
// synthetic set (post-processing: it carries the same epsilon), and test a
// CNN trained on the synthetic images only on the real test images of 5-9.
// Toy sizes, a few minutes on 2 cores; scripts/diffusion_demo.sh runs the
// full-size experiment.
//   example_private_diffusion [fashion-mnist dir] [output dir]
#include <iostream>
#include <string>

#include "dptrain/train/checkpoint.h"
#include "dptrain/train/config.h"
#include "dptrain/train/diffusion_evaluation.h"
#include "dptrain/train/diffusion_sampling.h"
#include "dptrain/train/diffusion_trainer.h"

int main(int argc, char** argv) {
  namespace train = dptrain::train;
  const std::string dataset = argc > 1 ? argv[1] : "fashion-mnist";
  const std::string out = argc > 2 ? std::string(argv[2]) + "/" : "";
  try {
    train::TrainConfig pre;
    pre.task = "diffusion";
    pre.model = "unet-small";
    pre.dataset = dataset;
    pre.classes = {0, 1, 2, 3, 4};
    pre.optimizer = "adam";
    pre.lr = 2e-3;
    pre.batch_size = 64;
    pre.steps = 30;
    pre.noise_multiplicity = 2;
    pre.seed = 1;
    pre.save_weights = out + "pretrained.h5";
    std::cout << train::run_diffusion_pretraining(pre) << "\n";

    // The private run: only its data is protected, at (10, 1e-5)-DP.
    train::TrainConfig ft = pre;
    ft.classes = {5, 6, 7, 8, 9};
    ft.init_checkpoint = pre.save_weights;
    ft.target_epsilon = 10.0;
    ft.delta = 1e-5;
    ft.lr = 1e-3;
    ft.batch_size = 128;
    ft.steps = 30;
    ft.save_weights = out + "finetuned.h5";
    const std::string summary = train::run_diffusion_finetuning(ft);
    train::write_file_atomically(out + "finetuned.json", summary + "\n");
    std::cout << summary << "\n";

    train::SampleRun sample;
    sample.weights = ft.save_weights;
    sample.model = ft.model;
    sample.num_classes = 5;
    sample.num_samples = 500;
    sample.out = out + "synthetic.h5";
    sample.privacy_summary = out + "finetuned.json";  // records its epsilon
    sample.seed = 2;
    sample.sampler.steps = 8;
    std::cout << train::run_diffusion_sampling(sample) << "\n";

    train::EvaluationRun evaluation;
    evaluation.synthetic = sample.out;
    evaluation.real = dataset;
    evaluation.classes = ft.classes;
    evaluation.training.epochs = 3;
    std::cout << train::run_diffusion_evaluation(evaluation) << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
