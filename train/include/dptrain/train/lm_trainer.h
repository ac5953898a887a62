// Private training of a Griffin / Hawk byte-level language model on a
// TextDataset, with the same private step loop as image training
// (private_loop.h).
//
// Privacy unit: ONE SEQUENCE of `sequence_length` bytes. Each DP-SGD step
// clips each sampled sequence's gradient; the guarantee (ε, δ) is for adding
// or removing one sequence. Text of one author that spans k sequences is
// protected only with group privacy over k units.
//
//   auto model = models::Griffin(models::griffin_config("hawk-tiny"));
//   TrainConfig config;  config.task = "lm";  config.target_epsilon = 8;
//   LmTrainer trainer(model, config);
//   LmFitResult r = trainer.fit(train_text, &heldout_text);
//   r.eval.perplexity, r.epsilon
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dptrain/accountant/event.h"
#include "dptrain/datasets/text_dataset.h"
#include "dptrain/models/griffin.h"
#include "dptrain/train/config.h"
#include "dptrain/train/private_loop.h"

namespace dptrain::train {

/// Next-byte prediction quality on a text data set.
struct LmEvalResult {
  std::int64_t sequences = 0;
  std::int64_t tokens = 0;  ///< predictions: sequences · (L − 1)
  double loss = 0.0;        ///< mean per-token cross-entropy (nats)
  double perplexity = 0.0;  ///< exp(loss); 256 for a uniform byte model
};

/// One line of the per-epoch log.
struct LmEpochRecord {
  std::int64_t epoch = 0;  ///< 1-based
  std::int64_t step = 0;
  /// Mean per-token loss over the epoch's sampled sequences: NOT PRIVATE.
  double train_loss = 0.0;
  LmEvalResult eval;      ///< last iterate on the held-out text
  LmEvalResult ema_eval;  ///< EMA parameters (sequences 0 when no EMA)
  double epsilon = 0.0;
  double seconds = 0.0;
};

/// What fit() did.
/// What fit() did: the privacy side (LoopResult: steps, q, σ, ε by both
/// accountants, δ, budget stop, notes, wall time) and the held-out figures.
struct LmFitResult : LoopResult {
  /// What one privacy unit was, e.g. "one sequence of 128 bytes" or "one
  /// user (the mean over at most 8 of their records of 64 tokens)".
  std::string privacy_unit;
  /// add_remove_one_sequence, add_remove_one_record or add_remove_one_user.
  std::string adjacency;
  std::int64_t users = 0;     ///< privacy units of a user-level run
  LmEvalResult initial_eval;  ///< held-out, before training (not on resume)
  LmEvalResult eval;
  LmEvalResult ema_eval;
  std::vector<LmEpochRecord> epochs;
};

/// Trains a Griffin / Hawk model privately. With config.privacy_unit
/// "user" the data set must have users (TextDataset::from_records with
/// users): each step Poisson-samples users at q = batch_size / users, and a
/// sampled user's gradient is the mean over at most config.records_per_user
/// of their records (padding rows carry weight 0), clipped once.
/// config.freeze_embeddings and
/// config.train_blocks are applied here (before the engine is built);
/// config.model, config.dataset and config.init_checkpoint are not read (the
/// caller built the model and the data).
class LmTrainer {
 public:
  /// Sets config.task to "lm" and validates it (std::invalid_argument naming
  /// the flag), then as below.
  LmTrainer(models::Griffin model, TrainConfig config);
  /// Refuses a config of another task or a --train-blocks index outside the
  /// model (std::invalid_argument naming the flag).
  LmTrainer(models::Griffin model, ValidConfig config);
  ~LmTrainer();
  LmTrainer(const LmTrainer&) = delete;
  LmTrainer& operator=(const LmTrainer&) = delete;

  /// Trains on `train`, evaluating on `eval` (held-out text) before training
  /// and after every epoch when given. Throws std::invalid_argument for a
  /// batch larger than the data set or sequences of another length than
  /// config.sequence_length.
  LmFitResult fit(const datasets::TextDataset& train,
                  const datasets::TextDataset* eval = nullptr);

  /// Per-token loss and perplexity of the current (or EMA) parameters.
  LmEvalResult evaluate(const datasets::TextDataset& data,
                        bool use_ema = false);

  double epsilon() const;
  const accountant::EventHistory& privacy_history() const;
  models::Griffin model() const;

  /// Writes the last iterate's (or the EMA's) weights with save_lm_weights;
  /// false, writing nothing, when use_ema is asked without an EMA.
  bool save_weights(const std::string& path, bool use_ema = false);

  /// What the evaluation text is, in log lines: by default the held-out
  /// tail of the private file, which is private data evaluated without
  /// noise.
  std::string eval_label = "held-out (private, not noised)";
  /// "bytes", or "tokens" when the data were tokenised (log lines).
  std::string token_word = "bytes";
  /// A SentencePiece model's bytes, stored in checkpoints and weights files
  /// so that `generate` decodes with the tokenizer the model was trained
  /// with; empty for bytes.
  std::string tokenizer_model;

  std::function<void(const LmEpochRecord&)> on_epoch;
  std::function<void(const std::string&)> log = nullptr;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// How a user-level step lays out its sampled users for the engine: `group`
/// rows per user (the engine's K-row groups), first m = min(n_u, group) of
/// the user's n_u records — a uniform random choice from `rng` when n_u >
/// group — with weight group/m, then group − m padding rows (a copy of the
/// first) with weight 0. Weighting each row's loss so makes the engine's
/// mean over the group the mean over the user's m records; padding adds
/// exactly nothing. Throws std::out_of_range for a user without records.
struct UserRows {
  std::vector<std::int64_t> rows;  ///< sequence indices, users.size()·group
  std::vector<double> weights;     ///< per row
};
UserRows user_rows(const std::vector<std::vector<std::int64_t>>& by_user,
                   const std::vector<std::int64_t>& users, std::int64_t group,
                   std::mt19937_64& rng);

/// The run's summary as one JSON object: perplexity, ema_perplexity,
/// initial_perplexity, loss, epsilon, delta, noise_multiplier, sample_rate,
/// steps, accountant, privacy_unit, wall_seconds, config, ...
std::string lm_summary_json(const LmFitResult& result,
                            const TrainConfig& config);

/// What `dptrain train --task lm` does: reads config.dataset ("text:FILE"),
/// holds out the last validation_fraction (0 means 0.1) of its sequences,
/// builds config.model (a Griffin / Hawk config name), loads
/// config.init_checkpoint (.safetensors, .h5) if given, trains and returns
/// the summary JSON. Throws std::invalid_argument naming the flag for bad
/// input.
struct LmRunResult {
  LmFitResult fit;
  std::string summary_json;
};
LmRunResult run_lm_training(const TrainConfig& config);

/// Loads an LM checkpoint written by LmTrainer: rebuilds the model from the
/// config name stored in it and loads its parameters. Throws
/// std::runtime_error naming the file when it is missing, corrupt, or not
/// a language-model checkpoint.
models::Griffin load_lm_checkpoint(const std::string& path);

/// Writes `model`'s weights and config to `path` (a LibTorch archive,
/// atomically): the release artefact of a language-model run, without any
/// training state.
/// `tokenizer_model`: a SentencePiece model's bytes to store beside the
/// weights (empty: a byte model).
void save_lm_weights(models::GriffinImpl& model, const std::string& path,
                     const std::string& tokenizer_model = "");

/// Loads a file written by save_lm_weights. Throws std::runtime_error naming
/// the file when it is missing, not a LibTorch archive, or not an LM's.
models::Griffin load_lm_weights(const std::string& path);

/// `dptrain generate`.
struct GenerateRequest {
  std::string weights;     ///< a --save-weights file (the release artefact), or
  std::string checkpoint;  ///< a training checkpoint (private state)
  std::string prompt;
  /// Tokens to generate (bytes for a byte model): --num-tokens/--num-bytes.
  std::int64_t num_tokens = 200;
  /// A SentencePiece tokenizer.model; default: the one stored with the
  /// weights (a model trained with --tokenizer), else bytes.
  std::string tokenizer;
  double temperature = 0.8;  ///< 0 = greedy
  std::uint64_t seed = 0;
  /// Receives the generated text as it is sampled (streaming), piece by
  /// piece; optional.
  std::function<void(const std::string&)> on_text;
};
/// The continuation of the prompt (the generated bytes only). Throws
/// std::invalid_argument naming the flag (--prompt, --num-tokens,
/// --temperature) and std::runtime_error naming the checkpoint.
std::string generate_from_checkpoint(const GenerateRequest& request);

}  // namespace dptrain::train
