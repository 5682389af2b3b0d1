// Streaming sample-rate conversion (see rate_adapter.hpp): the filter design mirrors
// neuralcomp/host/resample.py term by term so both report the same delays.
#include "rate_adapter.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace neuralcomp_plugin {
namespace {

constexpr double kAttenuationDb = 100.0;  // "high" quality
constexpr double kPassFraction = 0.82;
constexpr double kMarginDb = 1.0;
constexpr double kPi = 3.141592653589793;

// Modified Bessel function of the first kind, order 0 (power series, converges fast for beta ~ 10).
double bessel_i0(double x) {
  double sum = 1.0, term = 1.0;
  const double q = x * x / 4.0;
  for (int k = 1; k < 500; ++k) {
    term *= q / (static_cast<double>(k) * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

double kaiser_beta(double atten_db) {
  if (atten_db > 50.0) return 0.1102 * (atten_db - 8.7);
  if (atten_db >= 21.0) return 0.5842 * std::pow(atten_db - 21.0, 0.4) + 0.07886 * (atten_db - 21.0);
  return 0.0;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0

}  // namespace

void StreamingResampler::prepare(int from_rate, int to_rate, int channels, int max_input, int whole_delay_at) {
  const int g = std::gcd(from_rate, to_rate);
  up_ = to_rate / g;
  down_ = from_rate / g;
  channels_ = channels;
  max_input_ = max_input;
  if (up_ == down_) {
    taps_ = 1;
    center_ = 0;
    phase_taps_.assign(1, 1.0f);
  } else {
    const double rate_hi = static_cast<double>(from_rate) * up_;
    const double design_db = kAttenuationDb + kMarginDb;
    const double f_stop = std::min(from_rate, to_rate) / 2.0;
    const double f_pass = kPassFraction * f_stop;
    const double cutoff = (f_pass + f_stop) / 2.0;
    const double beta = kaiser_beta(design_db);
    // The same expression, in the same order, as resample.py, so `half` is the same integer.
    const int64_t half = static_cast<int64_t>(
        std::ceil((design_db - 7.95) / (2.285 * 2 * kPi * (f_stop - f_pass) / rate_hi) / 2));
    const int64_t unit = static_cast<int64_t>(from_rate) * up_ / whole_delay_at;
    center_ = (half + unit - 1) / unit * unit;
    taps_ = static_cast<int>((center_ + half) / up_ + 1);
    const double fc = cutoff / rate_hi;
    const double i0_beta = bessel_i0(beta);
    phase_taps_.assign(static_cast<size_t>(up_) * taps_, 0.0f);
    for (int k = 0; k < taps_; ++k) {
      for (int p = 0; p < up_; ++p) {
        const int64_t n = static_cast<int64_t>(k) * up_ + p;
        const double t = static_cast<double>(n - center_);
        if (std::fabs(t) > static_cast<double>(half)) continue;
        const double r = t / static_cast<double>(half);
        const double window = bessel_i0(beta * std::sqrt(1.0 - r * r)) / i0_beta;
        const double x = 2 * fc * t;
        const double sinc = x == 0.0 ? 1.0 : std::sin(kPi * x) / (kPi * x);
        const double h = 2 * fc * sinc * window * up_;
        phase_taps_[static_cast<size_t>(p) * taps_ + (taps_ - 1 - k)] = static_cast<float>(h);
      }
    }
  }
  max_output_ = static_cast<int>(ceil_div(static_cast<int64_t>(max_input) * up_, down_)) + 1;
  history_.assign(channels, std::vector<float>(static_cast<size_t>(taps_ - 1 + max_input), 0.0f));
  reset();
}

void StreamingResampler::reset() {
  for (auto& h : history_) std::fill(h.begin(), h.end(), 0.0f);
  n_in_ = 0;
  n_out_ = 0;
}

int StreamingResampler::process(const float* const* input, int count, float* const* output) noexcept {
  if (up_ == down_) {
    for (int c = 0; c < channels_; ++c)
      if (output[c] != input[c]) std::memcpy(output[c], input[c], sizeof(float) * count);
    return count;
  }
  const int k = taps_;
  const int64_t n1 = n_in_ + count;
  const int64_t j1 = ceil_div(n1 * up_, down_);
  const int produced = static_cast<int>(j1 - n_out_);
  for (int c = 0; c < channels_; ++c) {
    float* hist = history_[c].data();
    std::memcpy(hist + (k - 1), input[c], sizeof(float) * count);
    float* out = output[c];
    for (int64_t j = n_out_; j < j1; ++j) {
      const int64_t jm = j * down_;
      const int64_t a = jm / up_;            // newest input sample this output reads
      const float* taps = phase_taps_.data() + static_cast<size_t>(jm % up_) * k;
      const float* window = hist + (a - n_in_);  // hist[(a - n_in) + k - 1] is input sample a
      float sum = 0.0f;
      for (int i = 0; i < k; ++i) sum += taps[i] * window[i];
      *out++ = sum;
    }
    std::memmove(hist, hist + count, sizeof(float) * (k - 1));
  }
  const int64_t q = n1 / down_;  // M inputs give exactly L outputs: keep the counters small
  n_in_ = n1 - q * down_;
  n_out_ = j1 - q * up_;
  return produced;
}

void RateAdapter::prepare(int host_rate, int model_rate, int channels, int max_host_block) {
  host_rate_ = host_rate;
  model_rate_ = model_rate;
  channels_ = channels;
  max_host_block_ = max_host_block;
  passthrough_ = host_rate == model_rate;
  down_.prepare(host_rate, model_rate, channels, max_host_block, host_rate);
  up_.prepare(model_rate, host_rate, channels, down_.max_output(), host_rate);
  middle_.assign(channels, std::vector<float>(static_cast<size_t>(down_.max_output()), 0.0f));
  back_.assign(channels, std::vector<float>(static_cast<size_t>(up_.max_output()), 0.0f));
  fifo_.assign(channels, std::vector<float>(static_cast<size_t>(up_.max_output() + max_host_block + 8), 0.0f));
  middle_ptrs_.resize(channels);
  back_ptrs_.resize(channels);
  for (int c = 0; c < channels; ++c) {
    middle_ptrs_[c] = middle_[c].data();
    back_ptrs_[c] = back_[c].data();
  }
  reset();
}

void RateAdapter::reset() {
  down_.reset();
  up_.reset();
  fifo_count_ = 0;
}

int RateAdapter::total_latency(int model_latency_at_model_rate) const {
  if (passthrough_) return model_latency_at_model_rate;
  // down delay (center_d / up_d host samples) + up delay (center_u / down_u) + model latency * host/model;
  // up_d == down_u == model_rate / g.
  const int64_t g = std::gcd(host_rate_, model_rate_);
  const int64_t den = model_rate_ / g;
  const int64_t num = down_.center() + up_.center() + static_cast<int64_t>(model_latency_at_model_rate) * (host_rate_ / g);
  return static_cast<int>((2 * num + den) / (2 * den));  // round half up
}

void RateAdapter::process(float* const* audio, int count, ModelFn model, void* context) noexcept {
  if (passthrough_) {
    model(context, audio, count);
    return;
  }
  const int middle_count = down_.process(audio, count, middle_ptrs_.data());
  if (middle_count > 0) {
    model(context, middle_ptrs_.data(), middle_count);
    const int back_count = up_.process(middle_ptrs_.data(), middle_count, back_ptrs_.data());
    for (int c = 0; c < channels_; ++c)
      std::memcpy(fifo_[c].data() + fifo_count_, back_[c].data(), sizeof(float) * back_count);
    fifo_count_ += back_count;
  }
  // fifo_count_ >= count always (resample.py proves it); guard anyway: never read past the FIFO.
  const int ready = std::min(count, fifo_count_);
  for (int c = 0; c < channels_; ++c) {
    float* f = fifo_[c].data();
    std::memcpy(audio[c], f, sizeof(float) * ready);
    std::fill(audio[c] + ready, audio[c] + count, 0.0f);
    std::memmove(f, f + ready, sizeof(float) * (fifo_count_ - ready));
  }
  fifo_count_ -= ready;
}

}  // namespace neuralcomp_plugin
