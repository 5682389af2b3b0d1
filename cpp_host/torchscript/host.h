// neuralcomp C++ host: runs an exported streaming SPTMod (one TorchScript file) buffer by buffer.
//
// The TorchScript module (export/streaming.py) keeps all stream state in its own buffers; this
// class owns one module, the current control values and the channel count, and turns the module's
// interface (normalised controls, tensors) into a plain planar float API.
//
// Threading: every public method takes an internal mutex, so calls from different threads are
// serialised (e.g. set_control from a UI thread while process runs on the audio thread). The
// constructor calls at::set_num_threads(1), which is process-wide (libtorch's intra-op pool).
#pragma once

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/script.h>

namespace neuralcomp {

// The newest metadata schema (the module's `neuralcomp_schema_version`) this host understands.
constexpr int64_t kSupportedSchema = 1;

// The model file cannot be used: missing, not a TorchScript archive, not a neuralcomp model,
// made by a newer neuralcomp, or lacking a method/attribute the host needs.
class ModelLoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StreamingHost {
 public:
  // Loads `model_path`, checks it, sets the controls to their defaults, resets the stream to
  // `num_channels` channels, warms the TorchScript executor up on silence and resets again.
  // Throws ModelLoadError (file problems) or std::invalid_argument (num_channels < 1).
  explicit StreamingHost(const std::string& model_path, int num_channels = 1);

  StreamingHost(const StreamingHost&) = delete;
  StreamingHost& operator=(const StreamingHost&) = delete;

  // Processes one buffer. `input` and `output` are planar (channel-major): channel c occupies
  // [c * num_frames, (c + 1) * num_frames). They may be the same pointer (in-place).
  // num_channels must equal num_channels(); num_frames == 0 is a no-op.
  // Throws std::invalid_argument for a wrong channel count, negative frames or null pointers.
  // `sidechain`: a model keyed by S = sidechain_channels() > 0 channels needs the key, planar
  // (num_channels * S rows of num_frames; rows c * S ... c * S + S - 1 key channel c); a model without
  // one takes nullptr. Otherwise std::invalid_argument.
  void process(const float* input, float* output, int64_t num_channels, int64_t num_frames,
               const float* sidechain = nullptr);
  // Sidechain (key) channels per audio channel the model takes; 0: it keys from its input.
  int64_t sidechain_channels() const { return sidechain_channels_; }

  // Stereo link: every channel gets the gain and offset of one modulation path, driven per sample
  // by the channel of largest magnitude. Switching resets the stream.
  void set_linked(bool linked);
  bool linked() const;

  // Restart the stream from the start state (silence at the current controls).
  void reset();
  // Same, changing the channel count (>= 1).
  void reset(int num_channels);

  // Controls in user units (e.g. dB). Unknown name or value outside [min, max] (or NaN):
  // std::invalid_argument. A change takes effect for the frames that finish after it.
  void set_control(const std::string& name, double value);
  double get_control(const std::string& name) const;
  std::vector<std::string> control_names() const { return control_names_; }
  std::vector<double> control_minimum() const { return control_minimum_; }
  std::vector<double> control_maximum() const { return control_maximum_; }
  std::vector<double> control_default() const { return control_default_; }
  std::vector<bool> control_log_mapping() const { return control_log_mapping_; }
  // Current values in user units, in control_names() order.
  std::vector<double> control_values() const;

  int64_t latency_samples() const { return latency_samples_; }
  int64_t sample_rate() const { return sample_rate_; }
  int64_t pool_size() const { return pool_size_; }
  int64_t schema_version() const { return schema_version_; }
  const std::string& mode() const { return mode_; }
  const std::string& metadata_json() const { return metadata_json_; }
  const std::string& model_path() const { return model_path_; }
  int64_t num_channels() const;
  // Buffers the module muted because their input had NaN/Inf (it then restored its start state).
  int64_t nonfinite_buffers() const;

  // Stream state (see the metadata "state" entry): first an int64 scalar "phase", the rest float32.
  std::vector<std::string> state_names() const;
  std::vector<at::Tensor> get_state() const;
  // Restores a get_state() snapshot taken from a stream of the same layout: the same channel count
  // and the same stereo link (std::invalid_argument naming both layouts otherwise; reset first).
  // A state the module rejects: std::invalid_argument with the module's message.
  void set_state(const std::vector<at::Tensor>& state);

 private:
  void reset_locked(int64_t num_channels);
  void rebuild_controls_locked();
  size_t control_index(const std::string& name) const;

  std::string model_path_;
  mutable torch::jit::Module module_;
  mutable std::mutex mutex_;

  int64_t schema_version_ = 0;
  int64_t sample_rate_ = 0;
  int64_t pool_size_ = 0;
  int64_t latency_samples_ = 0;
  int64_t num_controls_ = 0;
  int64_t sidechain_channels_ = 0;
  std::string mode_;
  std::string metadata_json_;
  std::vector<std::string> control_names_;
  std::vector<double> control_minimum_;
  std::vector<double> control_maximum_;
  std::vector<double> control_default_;
  std::vector<bool> control_log_mapping_;  // true: normalised = log(v / min) / log(max / min)

  std::vector<double> control_values_;  // user units
  at::Tensor controls_;                 // normalised, float32 (num_controls,)
};

}  // namespace neuralcomp
