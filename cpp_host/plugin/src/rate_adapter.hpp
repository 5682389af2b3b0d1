// Streaming sample-rate conversion around a fixed-rate engine, as neuralcomp/host/resample.py does it.
//
// StreamingResampler: rational L/M polyphase filter from a Kaiser-windowed sinc designed with the same
// formulas as the Python `StreamingResampler` ("high" quality: 100 dB, passband 0.82 of the lower
// Nyquist frequency), so the group delay and hence the latency are the same integers. Each output
// sample is one fixed dot product over K taps in a fixed order: any partition of the input gives
// bitwise the same output. RateAdapter puts the engine between two of them (host -> model -> host)
// with a small FIFO, so a host call of T samples returns T samples at a constant latency.
// Everything is sized in prepare(); process() allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

namespace neuralcomp_plugin {

class StreamingResampler {
 public:
  // `whole_delay_at` is from_rate or to_rate: the group delay is a whole number of samples there.
  void prepare(int from_rate, int to_rate, int channels, int max_input, int whole_delay_at);
  void reset();
  // Consumes `count` samples per channel, writes the outputs that became available; returns their number
  // (at most max_output()).
  int process(const float* const* input, int count, float* const* output) noexcept;
  int max_output() const { return max_output_; }
  bool identity() const { return up_ == down_; }
  int up() const { return up_; }
  int down() const { return down_; }
  int64_t center() const { return center_; }  // group delay in samples at from_rate * up
  int taps_per_phase() const { return taps_; }

 private:
  int channels_ = 0, up_ = 1, down_ = 1, taps_ = 1, max_input_ = 0, max_output_ = 0;
  int64_t center_ = 0;
  std::vector<float> phase_taps_;            // (up, taps): each phase's taps, oldest input first
  std::vector<std::vector<float>> history_;  // per channel: taps-1 past samples, then the new input
  int64_t n_in_ = 0, n_out_ = 0;             // counters, reduced by whole periods
};

// host -> model -> host. `run_model(buffers, count)` processes `count` samples in place at the model rate.
class RateAdapter {
 public:
  using ModelFn = void (*)(void* context, float* const* audio, int count);

  void prepare(int host_rate, int model_rate, int channels, int max_host_block);
  void reset();
  bool passthrough() const { return passthrough_; }
  // The adapter's delay plus the model's (given at the model rate), in host samples, rounded half up:
  // the same integer as RateAdaptedStream.total_latency_samples.
  int total_latency(int model_latency_at_model_rate) const;
  int max_model_block() const { return down_.max_output(); }
  // Host block of `count` <= max_host_block samples, in place.
  void process(float* const* audio, int count, ModelFn model, void* context) noexcept;

 private:
  bool passthrough_ = true;
  int host_rate_ = 0, model_rate_ = 0, channels_ = 0, max_host_block_ = 0;
  StreamingResampler down_, up_;
  std::vector<std::vector<float>> middle_, back_, fifo_;
  std::vector<float*> middle_ptrs_, back_ptrs_;
  int fifo_count_ = 0;
};

}  // namespace neuralcomp_plugin
