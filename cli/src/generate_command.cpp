// `dptrain generate`: continue a prompt with a language model saved by
// `dptrain train --task lm --save-weights W.pt` (or its --checkpoint).
#include <iostream>
#include <memory>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/train/lm_trainer.h"

namespace dptrain::cli {

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", summary_of("generate"));
  auto request = std::make_shared<train::GenerateRequest>();
  cmd->add_option(
      "--weights", request->weights,
      "weights file of `dptrain train --task lm --save-weights W.pt` (the "
      "release artefact)");
  cmd->add_option(
      "--checkpoint", request->checkpoint,
      "checkpoint of `dptrain train --task lm` (private training state)");
  cmd->add_option("--prompt", request->prompt, "text to continue")->required();
  cmd->add_option("--num-tokens,--num-bytes", request->num_tokens,
                  "tokens to generate (bytes for a byte model) [default 200]");
  cmd->add_option("--tokenizer", request->tokenizer,
                  "SentencePiece tokenizer.model (default: the one stored with "
                  "a model trained with --tokenizer, else bytes)");
  cmd->add_option("--temperature", request->temperature,
                  "sampling temperature; 0 = greedy [default 0.8]");
  cmd->add_option("--seed", request->seed, "sampling seed [default 0]");
  cmd->callback([request] {
    // The prompt first, then the text as it is sampled.
    bool started = false;
    request->on_text = [&](const std::string& piece) {
      if (!started) std::cout << request->prompt;
      started = true;
      std::cout << piece << std::flush;
    };
    const auto text = train::generate_from_checkpoint(*request);
    if (!started) std::cout << request->prompt;
    std::cout << std::endl;
  });
}

}  // namespace dptrain::cli
