// neuralcomp native engine: runs an exported streaming SPTMod or TCN baseline without libtorch.
//
// The engine reads the `neuralcomp_engine.bin` entry that the exporter writes into the `.ts`
// archive (layout: docs/engine-format.md) and computes exactly what export/streaming.py computes,
// with hand-written kernels whose arithmetic per output sample never depends on the buffer length:
// a stream cut into any buffers is bitwise identical to one call.
//
// Threading contract
//   * Model is immutable after loading and may be shared by any number of Engines and threads.
//   * Engine::process() and Engine::process_with_control_track() are the REAL-TIME entry points:
//     they allocate nothing, free nothing, lock nothing, make no system call and throw nothing.
//     Call them from one audio thread at a time.
//   * Engine::set_control() / set_control_normalised() may be called from ANY thread at any time:
//     values travel through atomics and take effect for the pooling frames that finish in the next
//     process() call (a frame's FiLM uses the controls in force at its last sample).
//   * restart() is real-time safe too (it only copies the start state that the last reset computed).
//   * Everything else (prepare, reset, set_linked, set_state, get_state) is NOT real-time safe and must
//     not run concurrently with process() (as a plugin's prepareToPlay / setState).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace neuralcomp {

// The newest engine-entry layout this build reads.
constexpr int kEngineFormatVersion = 1;

// Typed errors (the Python bindings map them to neuralcomp's exceptions of the same names).
class ModelFileError : public std::runtime_error {  // missing, truncated, foreign, corrupt, newer
 public:
  using std::runtime_error::runtime_error;
};
class AudioInputError : public std::invalid_argument {  // wrong channel count / length
 public:
  using std::invalid_argument::invalid_argument;
};
class ControlError : public std::invalid_argument {  // unknown control, value out of range or NaN
 public:
  using std::invalid_argument::invalid_argument;
};
class StateError : public std::invalid_argument {  // snapshot that does not fit this stream
 public:
  using std::invalid_argument::invalid_argument;
};

// One user control as the model file declares it.
struct ControlInfo {
  std::string name;
  std::string unit;
  double minimum = 0.0;
  double maximum = 1.0;
  double default_value = 0.5;
  bool log_mapping = false;  // normalised = log(v / min) / log(max / min), else (v - min) / (max - min)

  // User value -> the model's [0, 1], rounded to float32 (the same arithmetic as every host).
  float normalise(double value) const;
};

// Private layouts (weights.hpp, engine.cpp).
struct BlockWeights;
struct BlockStream;
struct PathState;

// An exported model: weights, shapes and metadata. Immutable; load once, share freely.
class Model {
 public:
  // Reads the engine entry of an exported `.ts` archive. Throws ModelFileError saying why a file is
  // refused (missing, not a zip, not a neuralcomp model, exported before the engine entry existed,
  // newer layout, corrupt data, an architecture this engine cannot run).
  static std::shared_ptr<const Model> load_file(const std::string& path);
  // The same from an archive in memory (e.g. a model embedded in a plugin); `source` names it in errors.
  static std::shared_ptr<const Model> load_memory(const void* data, size_t size, const std::string& source);

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // "sptmod" or "tcn" (the TCN baseline: per-sample dilated convs and a gain; pool_size 1, no LSTM)
  const std::string& architecture() const { return architecture_; }
  bool is_tcn() const { return architecture_ == "tcn"; }
  int sample_rate() const { return sample_rate_; }
  int pool_size() const { return pool_size_; }
  // true: each block reduces a frame of P samples by its maximum ("pooling": "max"); false: by the mean
  bool max_pooling() const { return max_pooling_; }
  bool paper_mode() const { return paper_mode_; }
  const std::string& mode() const { return mode_; }
  int latency_samples() const { return paper_mode_ ? pool_size_ - 1 : 0; }
  int lstm_hidden() const { return lstm_hidden_; }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  int start_state_samples() const { return start_state_samples_; }
  // Sidechain (key) channels per audio channel: S > 0 for a keyed model, whose modulation path reads
  // [input; S key channels] and whose process() needs the key; 0 for a model that keys from its input.
  int sidechain_channels() const { return sidechain_channels_; }
  const std::vector<ControlInfo>& controls() const { return controls_; }
  int num_controls() const { return static_cast<int>(controls_.size()); }
  int control_index(const std::string& name) const;  // -1 when unknown
  // The model's metadata JSON (neuralcomp_metadata.json), as the other hosts expose it.
  const std::string& metadata_json() const { return metadata_json_; }
  const std::string& source() const { return source_; }

  // Stream state names in get_state() order: "phase", then per block conv_cache, pool_partial,
  // lstm_h, lstm_c, modulation_history, then pending_input and output_queue, then pending_sidechain for
  // a keyed model (export/streaming.py); for a TCN "phase" and each block's conv_cache (export/streaming_tcn.py).
  std::vector<std::string> state_names() const;

 private:
  Model() = default;
  friend class Engine;
  friend struct ModelParser;

  std::string source_;
  std::string metadata_json_;
  std::string architecture_ = "sptmod";
  std::string mode_;
  int sample_rate_ = 0;
  int pool_size_ = 0;
  bool max_pooling_ = false;
  bool paper_mode_ = false;
  int lstm_hidden_ = 0;
  int start_state_samples_ = 0;
  int sidechain_channels_ = 0;
  std::vector<ControlInfo> controls_;
  std::vector<float> interpolation_weights_;  // (P,): weight of the newer frame at each position
  std::vector<std::unique_ptr<BlockWeights>> blocks_;
  // TCN: the 1x1 conv from the last block to the gain, and the gain's scale 10^(max_gain_db / 20)
  std::vector<float> gain_weight_;  // (channels,)
  float gain_bias_ = 0.0f;
  float gain_scale_ = 1.0f;
};

// One state tensor of a snapshot: shape and float32 data ("phase" is stored as one float too).
struct StateTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// A stream of a Model: state, scratch buffers and controls, all sized in prepare().
class Engine {
 public:
  // Sizes everything for `num_channels` channels and calls of up to `max_block_size` frames (longer
  // calls are split internally with bitwise the same result), sets the controls to their defaults
  // and resets to the start state.
  Engine(std::shared_ptr<const Model> model, int num_channels = 1, int max_block_size = 4096);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- not real-time ----------------------------------------------------------------------------
  // Re-size for another channel count / block size, then reset.
  void prepare(int num_channels, int max_block_size);
  // Back to the start state: the zero state, then start_state_samples of silence at the current controls.
  void reset();
  // Stereo link: one modulation path, driven per sample by the channel of largest magnitude (signed),
  // gives every channel the same gain and offset. Switching resets the stream.
  void set_linked(bool linked);
  std::vector<StateTensor> get_state() const;
  // Restores a get_state() snapshot of the same model, channel count and linked setting; throws
  // StateError naming the first tensor that does not fit (the stream is then unchanged).
  void set_state(const std::vector<StateTensor>& state);

  // ---- real-time (see the threading contract above) ----------------------------------------------
  // Planar buffers: input[c] and output[c] hold num_frames samples of channel c (in place allowed).
  // Any num_frames >= 0. `sidechain`: the key of a keyed model (Model::sidechain_channels() = S > 0),
  // sidechain_rows = num_channels * S planar rows of num_frames samples, rows c * S ... c * S + S - 1
  // keying channel c; it feeds the modulation path only (linked: each key channel follows, per sample,
  // the loudest channel's key). An unkeyed model takes nullptr and 0. Returns false (and outputs
  // nothing) when num_channels differs from the prepared count, a pointer is null, or the key does not
  // fit the model; refusal() then says why. A call holding NaN/Inf anywhere (audio or key) outputs
  // zeros for the whole call, restores the start state and counts it in nonfinite_buffers().
  bool process(const float* const* input, float* const* output, int num_channels, int num_frames,
               const float* const* sidechain = nullptr, int sidechain_rows = 0) noexcept;
  // The same with per-sample controls in user units: control_track[k][t] is control k at sample t;
  // a frame's FiLM uses the values at its last sample. Values out of range are clamped to it and
  // NaN keeps the previous value (the real-time path cannot throw).
  bool process_with_control_track(const float* const* input, float* const* output, int num_channels,
                                  int num_frames, const float* const* control_track,
                                  const float* const* sidechain = nullptr, int sidechain_rows = 0) noexcept;
  // Why the last process call returned false (a fixed text; "" after a call that was not refused).
  // Safe to read from any thread: the pointer is atomic and every text it points to is static.
  const char* refusal() const noexcept { return refusal_.load(std::memory_order_acquire); }
  // Back to the start state that the last reset() (or prepare / set_linked) computed, by copying it:
  // what a NaN/Inf call does, without counting one. reset() instead recomputes it at the current controls.
  void restart() noexcept;

  // ---- any thread --------------------------------------------------------------------------------
  // Control in user units; throws ControlError for an unknown index or a value outside [min, max] or NaN.
  void set_control(int index, double value);
  void set_control(const std::string& name, double value);
  double get_control(int index) const;
  double get_control(const std::string& name) const;

  // ---- queries -------------------------------------------------------------------------------------
  const Model& model() const { return *model_; }
  int num_channels() const { return num_channels_; }
  int max_block_size() const { return max_block_size_; }
  bool linked() const { return linked_; }
  int64_t nonfinite_buffers() const { return nonfinite_buffers_.load(std::memory_order_relaxed); }

  // Everything sized in prepare(): state of each modulation path, the start-state snapshot,
  // scratch buffers and the control atomics (engine.cpp).
  struct Impl;

 private:
  void update_film() noexcept;
  void refresh_controls() noexcept;
  void film_from_track(const float* const* control_track, int index) noexcept;
  void finish_frame(int block, BlockStream& stream, float* modulation) noexcept;
  void run_causal_path(PathState& path, float* const* audio, int audio_channels, int count) noexcept;
  void run_paper_path(PathState& path, float* const* audio, int audio_channels) noexcept;
  void run_tcn_path(PathState& path, float* const* audio, int audio_channels, const float* detector, int count) noexcept;
  std::vector<StateTensor> get_tcn_state() const;
  void set_tcn_state(const std::vector<StateTensor>& state);
  void load_detector(PathState& path, const float* const* input, const float* const* key, int path_index,
                     int count) noexcept;
  void run_piece(const float* const* input, const float* const* key, float* const* output, int count) noexcept;
  bool refuse(const char* why) noexcept {
    refusal_.store(why, std::memory_order_release);
    return false;
  }
  void zero_state() noexcept;
  void restore_start_state() noexcept;
  int detector_paths() const { return linked_ ? 1 : num_channels_; }

  std::shared_ptr<const Model> model_;
  std::unique_ptr<Impl> impl_;
  int num_channels_ = 0;
  int max_block_size_ = 0;
  bool linked_ = false;
  std::atomic<const char*> refusal_{""};
  std::atomic<int64_t> nonfinite_buffers_{0};
};

}  // namespace neuralcomp
