// The real-time SPTMod engine. Mirrors export/streaming.py step by step; see DESIGN.md section 11.
// The TCN baseline (export/streaming_tcn.py) runs per sample through run_tcn_path: its pool size is 1,
// so every sample is a frame, and each block keeps its input history in a ring of (k - 1) d + 1 rows.
//
// Partition invariance by construction: each output sample is computed by the same instructions in
// the same order whatever the call length. Kernels loop over channels (vectorised, zero-padded to
// kLanes), never over time; frame-rate work (pooling, FiLM, LSTM step, projection) runs once
// per finished frame; a call longer than max_block_size is cut into pieces, which changes nothing.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "neuralcomp/engine.hpp"
#include "weights.hpp"

namespace neuralcomp {
namespace {

// Eight float lanes as one value (GCC/Clang vector extension): the kernels say exactly which
// lanes are computed together, so the compiler cannot re-associate a reduction across rows.
typedef float Lanes8 __attribute__((vector_size(32)));
static_assert(kLanes == 8, "the kernels work in groups of 8 lanes");

inline Lanes8 load8(const float* p) {
  Lanes8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, Lanes8 v) { std::memcpy(p, &v, sizeof v); }
inline Lanes8 splat8(float x) { return Lanes8{x, x, x, x, x, x, x, x}; }

using ConvKernel = void (*)(const BlockWeights&, const float* rows, float* z);

// z = PReLU(bias + W . rows) for one sample; rows = the k * c_in conv inputs ending at this sample,
// summed in row order. GROUPS = lanes / 8 is a compile-time constant for the common widths.
template <int GROUPS>
void conv_prelu_fixed(const BlockWeights& w, const float* rows, float* z) {
  Lanes8 acc[GROUPS];
  for (int g = 0; g < GROUPS; ++g) acc[g] = load8(w.conv_bias.data() + 8 * g);
  const int taps = w.kernel_size * w.in_channels;
  const float* weight = w.conv_weight.data();
  for (int r = 0; r < taps; ++r) {
    const Lanes8 x = splat8(rows[r]);
    const float* wr = weight + static_cast<size_t>(r) * (8 * GROUPS);
    for (int g = 0; g < GROUPS; ++g) acc[g] += load8(wr + 8 * g) * x;
  }
  const Lanes8 zero = splat8(0.0f);
  for (int g = 0; g < GROUPS; ++g) {
    const Lanes8 negative = load8(w.prelu.data() + 8 * g) * acc[g];
    store8(z + 8 * g, acc[g] > zero ? acc[g] : negative);
  }
}

// acc[lanes] = bias + sum_r x[r] * weight[r][:] in row order; lanes a multiple of 8.
void affine_rows8(const float* weight, const float* bias, const float* x, int rows, int lanes, float* acc) {
  for (int o = 0; o < lanes; o += 8) store8(acc + o, load8(bias + o));
  for (int r = 0; r < rows; ++r) {
    const Lanes8 xr = splat8(x[r]);
    const float* wr = weight + static_cast<size_t>(r) * lanes;
    for (int o = 0; o < lanes; o += 8) store8(acc + o, load8(acc + o) + load8(wr + o) * xr);
  }
}

// acc = bias + sum_r x[r] * weight[r][:] with GROUPS * 8 lanes in registers (the TCN's convs): the
// same row order as affine_rows8, so the same result, only faster.
using AffineKernel = void (*)(const float* weight, const float* bias, const float* x, int rows, int lanes, float* acc);

template <int GROUPS>
void affine_fixed(const float* weight, const float* bias, const float* x, int rows, int, float* out) {
  Lanes8 acc[GROUPS];
  for (int g = 0; g < GROUPS; ++g) acc[g] = load8(bias + 8 * g);
  for (int r = 0; r < rows; ++r) {
    const Lanes8 xr = splat8(x[r]);
    const float* wr = weight + static_cast<size_t>(r) * (8 * GROUPS);
    for (int g = 0; g < GROUPS; ++g) acc[g] += load8(wr + 8 * g) * xr;
  }
  for (int g = 0; g < GROUPS; ++g) store8(out + 8 * g, acc[g]);
}

AffineKernel affine_kernel_for(int lanes) {
  switch (lanes) {
    case 8: return affine_fixed<1>;
    case 16: return affine_fixed<2>;
    case 24: return affine_fixed<3>;
    case 32: return affine_fixed<4>;
    default: return affine_rows8;
  }
}

void conv_prelu_any(const BlockWeights& w, const float* rows, float* z) {
  affine_rows8(w.conv_weight.data(), w.conv_bias.data(), rows, w.kernel_size * w.in_channels, w.lanes, z);
  const Lanes8 zero = splat8(0.0f);
  for (int o = 0; o < w.lanes; o += 8) {
    const Lanes8 v = load8(z + o);
    const Lanes8 negative = load8(w.prelu.data() + o) * v;
    store8(z + o, v > zero ? v : negative);
  }
}

ConvKernel conv_kernel_for(int lanes) {
  switch (lanes) {
    case 8: return conv_prelu_fixed<1>;
    case 16: return conv_prelu_fixed<2>;
    case 24: return conv_prelu_fixed<3>;
    case 32: return conv_prelu_fixed<4>;
    case 40: return conv_prelu_fixed<5>;
    case 48: return conv_prelu_fixed<6>;
    case 64: return conv_prelu_fixed<8>;
    default: return conv_prelu_any;
  }
}

// torch.lerp's formula (ATen Lerp.h), lane by lane, so the blend matches the TorchScript module.
inline Lanes8 lerp8(Lanes8 start, Lanes8 end, float weight) {
  const Lanes8 w = splat8(weight);
  return std::fabs(weight) < 0.5f ? start + w * (end - start) : end - (end - start) * (splat8(1.0f) - w);
}

// One sample of a block's modulation: blend two frames' modulation at `weight`, apply the audio gain
// and offset to every channel of the path, and modulate the next block's input row (if any) from z.
inline void modulate_sample(const float* older, const float* newer, float weight, int modulation_lanes,
                            int channels, const float* z, float* mod, float* const* audio, int audio_channels, int t,
                            float* next_row) noexcept {
  for (int m = 0; m < modulation_lanes; m += 8) store8(mod + m, lerp8(load8(older + m), load8(newer + m), weight));
  for (int a = 0; a < audio_channels; ++a) audio[a][t] = mod[1] + mod[0] * audio[a][t];
  if (next_row) {
    for (int o = 0; o < channels; ++o) next_row[o] = mod[2 + channels + o] + mod[2 + o] * z[o];
  }
}

// What FiLM's gamma is multiplied by: average pooling sums a frame, so 1/P folds into gamma; a maximum
// takes gamma as it is.
inline float frame_scale(const Model& model) {
  return model.max_pooling() ? 1.0f : static_cast<float>(1.0 / model.pool_size());
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// acc[lanes] = bias + sum_r x[r] * weight[r][:] in row order, any lane count (the FiLM MLP).
void affine_rows(const float* weight, const float* bias, const float* x, int rows, int lanes, float* acc) {
  for (int o = 0; o < lanes; ++o) acc[o] = bias[o];
  for (int r = 0; r < rows; ++r) {
    const float xr = x[r];
    const float* wr = weight + static_cast<size_t>(r) * lanes;
    for (int o = 0; o < lanes; ++o) acc[o] += wr[o] * xr;
  }
}

}  // namespace

// ---- state -----------------------------------------------------------------------------------------

struct BlockStream {
  std::vector<float> conv_input;  // rows of c_in: [k - 1 cached rows][this call's rows]
  std::vector<float> pool;        // (P, lanes): PReLU output of the unfinished frame, row = phase
  std::vector<float> h, c;        // (H,)
  std::vector<float> history;     // (2, modulation_lanes): modulation of the older and newer frame
  std::vector<float> ring;        // TCN: (context + 1, c_in) block input rows, a ring; row `head` is next
  int head = 0;
};

struct PathState {  // one modulation path (a channel, or the shared detector when linked)
  std::vector<BlockStream> blocks;
};

struct FilmParams {
  std::vector<float> scaled_gamma;  // (lanes,)
  std::vector<float> beta;             // (lanes,)
};

struct Engine::Impl {
  std::vector<ConvKernel> conv_kernels;
  std::vector<AffineKernel> affine_kernels;  // TCN: the conv and residual 1x1 of each block
  std::vector<PathState> paths, start_paths;
  int phase = 0, start_phase = 0;
  // paper mode: input of the unfinished frame and a ring of processed output, per audio channel
  std::vector<std::vector<float>> pending, queue, start_pending, start_queue;
  // paper mode, keyed model: the key of the unfinished frame, per key row (C * S rows)
  std::vector<std::vector<float>> pending_key, start_pending_key;
  int queue_read = 0, queue_count = 0;
  int start_queue_read = 0, start_queue_count = 0;
  // controls
  std::unique_ptr<std::atomic<double>[]> values;
  std::unique_ptr<std::atomic<float>[]> normalised;
  std::atomic<uint32_t> generation{1};
  uint32_t film_generation = 0;
  std::vector<float> film_controls, control_scratch, film_hidden_a, film_hidden_b, film_out;
  bool film_valid = false;
  bool film_follows_controls = false;  // the FiLM is that of the set controls, not of a track
  std::vector<FilmParams> film;  // per block
  // scratch
  std::vector<float> detector;                  // (max(P, max_block),)
  std::vector<std::vector<float>> frame_audio;  // paper: (C, P)
  std::vector<float> z, modulation, pooled, xh, gates, new_modulation;
  std::vector<float> taps, block_in, block_out, skip;  // TCN: gathered conv inputs and block activations
  std::vector<float*> audio_ptrs;
  std::vector<const float*> frame_input_ptrs, frame_key_ptrs;
  std::vector<const float*> piece_input, piece_key;
  std::vector<float*> piece_output;
};

// ---- construction ------------------------------------------------------------------------------------

Engine::Engine(std::shared_ptr<const Model> model, int num_channels, int max_block_size)
    : model_(std::move(model)), impl_(std::make_unique<Impl>()) {
  if (!model_) throw std::invalid_argument("Engine needs a model");
  Impl& s = *impl_;
  const int n = model_->num_controls();
  s.values = std::make_unique<std::atomic<double>[]>(std::max(n, 1));
  s.normalised = std::make_unique<std::atomic<float>[]>(std::max(n, 1));
  for (int i = 0; i < n; ++i) {
    const ControlInfo& info = model_->controls()[i];
    s.values[i].store(info.default_value);
    s.normalised[i].store(info.normalise(info.default_value));
  }
  s.film_controls.assign(n, 0.0f);
  s.control_scratch.assign(n, 0.0f);
  int widest_hidden = 1, widest_out = 1;
  for (const auto& b : model_->blocks_) {
    s.conv_kernels.push_back(conv_kernel_for(b->lanes));
    s.affine_kernels.push_back(affine_kernel_for(b->lanes));
    s.film.push_back(FilmParams{std::vector<float>(b->lanes, 0.0f), std::vector<float>(b->lanes, 0.0f)});
    widest_hidden = std::max(widest_hidden, b->film_hidden);
    widest_out = std::max(widest_out, 2 * b->channels);
  }
  s.film_hidden_a.assign(widest_hidden, 0.0f);
  s.film_hidden_b.assign(widest_hidden, 0.0f);
  s.film_out.assign(widest_out, 0.0f);
  prepare(num_channels, max_block_size);
}

Engine::~Engine() = default;

void Engine::prepare(int num_channels, int max_block_size) {
  if (num_channels < 1 || num_channels > 1024) {
    throw AudioInputError("num_channels must be in [1, 1024], got " + std::to_string(num_channels));
  }
  if (max_block_size < 1 || max_block_size > (1 << 20)) {
    throw AudioInputError("max_block_size must be in [1, 1048576], got " + std::to_string(max_block_size));
  }
  num_channels_ = num_channels;
  max_block_size_ = max_block_size;
  Impl& s = *impl_;
  const Model& m = *model_;
  const int P = m.pool_size(), H = m.lstm_hidden();
  const int rows = std::max(max_block_size, P);
  auto make_path = [&]() {
    PathState path;
    for (const auto& b : m.blocks_) {
      BlockStream bs;
      bs.conv_input.assign(static_cast<size_t>(b->kernel_size - 1 + rows) * b->in_channels, 0.0f);
      bs.pool.assign(static_cast<size_t>(P) * b->lanes, 0.0f);
      bs.h.assign(H, 0.0f);
      bs.c.assign(H, 0.0f);
      bs.history.assign(2 * static_cast<size_t>(b->modulation_lanes), 0.0f);
      if (m.is_tcn()) {
        bs.conv_input.assign(0, 0.0f);  // a TCN reads its ring instead
        bs.ring.assign(static_cast<size_t>(b->context + 1) * b->in_channels, 0.0f);
      }
      path.blocks.push_back(std::move(bs));
    }
    return path;
  };
  const int paths = detector_paths();
  s.paths.clear();
  s.start_paths.clear();
  for (int p = 0; p < paths; ++p) {
    s.paths.push_back(make_path());
    s.start_paths.push_back(make_path());
  }
  s.pending.assign(num_channels, std::vector<float>(P, 0.0f));
  s.start_pending = s.pending;
  s.queue.assign(num_channels, std::vector<float>(2 * static_cast<size_t>(P), 0.0f));
  s.start_queue = s.queue;
  const int key_rows = num_channels * m.sidechain_channels();
  s.pending_key.assign(key_rows, std::vector<float>(P, 0.0f));
  s.start_pending_key = s.pending_key;
  s.frame_audio.assign(num_channels, std::vector<float>(P, 0.0f));
  s.detector.assign(rows, 0.0f);
  int lanes = kLanes, modulation_lanes = kLanes, gate_lanes = kLanes, xh = 1;
  for (const auto& b : m.blocks_) {
    lanes = std::max(lanes, b->lanes);
    modulation_lanes = std::max(modulation_lanes, b->modulation_lanes);
    gate_lanes = std::max(gate_lanes, b->gate_lanes);
    xh = std::max(xh, b->channels + H);
  }
  int taps = 1;
  for (const auto& b : m.blocks_) taps = std::max(taps, b->kernel_size * b->in_channels);
  s.taps.assign(taps, 0.0f);
  s.block_in.assign(lanes, 0.0f);
  s.block_out.assign(lanes, 0.0f);
  s.skip.assign(lanes, 0.0f);
  s.z.assign(lanes, 0.0f);
  s.pooled.assign(lanes, 0.0f);
  s.modulation.assign(modulation_lanes, 0.0f);
  s.new_modulation.assign(modulation_lanes, 0.0f);
  s.gates.assign(gate_lanes, 0.0f);
  s.xh.assign(xh, 0.0f);
  s.audio_ptrs.assign(num_channels, nullptr);
  s.frame_input_ptrs.assign(num_channels, nullptr);
  s.frame_key_ptrs.assign(key_rows, nullptr);
  s.piece_input.assign(num_channels, nullptr);
  s.piece_key.assign(key_rows, nullptr);
  s.piece_output.assign(num_channels, nullptr);
  reset();
}

// ---- controls and FiLM -------------------------------------------------------------------------------

void Engine::set_control(int index, double value) {
  if (index < 0 || index >= model_->num_controls()) {
    throw ControlError("control index " + std::to_string(index) + " out of range (the model has " +
                       std::to_string(model_->num_controls()) + " controls)");
  }
  const ControlInfo& info = model_->controls()[index];
  if (!(value >= info.minimum && value <= info.maximum)) {  // also refuses NaN
    throw ControlError("control '" + info.name + "' = " + std::to_string(value) + " is outside its range [" +
                       std::to_string(info.minimum) + ", " + std::to_string(info.maximum) + "]");
  }
  impl_->values[index].store(value, std::memory_order_relaxed);
  impl_->normalised[index].store(info.normalise(value), std::memory_order_relaxed);
  impl_->generation.fetch_add(1, std::memory_order_release);
}

void Engine::set_control(const std::string& name, double value) {
  const int index = model_->control_index(name);
  if (index < 0) throw ControlError("unknown control '" + name + "'");
  set_control(index, value);
}

double Engine::get_control(int index) const {
  if (index < 0 || index >= model_->num_controls()) throw ControlError("control index out of range");
  return impl_->values[index].load(std::memory_order_relaxed);
}

double Engine::get_control(const std::string& name) const {
  const int index = model_->control_index(name);
  if (index < 0) throw ControlError("unknown control '" + name + "'");
  return get_control(index);
}

// FiLM (gamma / P, beta) of every block for the normalised controls in control_scratch, when they
// differ from those of the current FiLM (as StreamingSPTMod._update_film).
void Engine::update_film() noexcept {
  Impl& s = *impl_;
  const int n = model_->num_controls();
  if (n == 0) return;
  if (s.film_valid && std::equal(s.control_scratch.begin(), s.control_scratch.end(), s.film_controls.begin())) return;
  std::copy(s.control_scratch.begin(), s.control_scratch.end(), s.film_controls.begin());
  s.film_valid = true;
  const float scale = frame_scale(*model_);
  for (size_t j = 0; j < model_->blocks_.size(); ++j) {
    const BlockWeights& w = *model_->blocks_[j];
    const int h = w.film_hidden, c = w.channels;
    float* a = s.film_hidden_a.data();
    float* b = s.film_hidden_b.data();
    affine_rows(w.film0_weight.data(), w.film0_bias.data(), s.film_controls.data(), n, h, a);
    for (int i = 0; i < h; ++i) a[i] = a[i] > 0.0f ? a[i] : w.film0_prelu[i] * a[i];
    affine_rows(w.film1_weight.data(), w.film1_bias.data(), a, h, h, b);
    for (int i = 0; i < h; ++i) b[i] = b[i] > 0.0f ? b[i] : w.film1_prelu[i] * b[i];
    affine_rows(w.film2_weight.data(), w.film2_bias.data(), b, h, 2 * c, s.film_out.data());
    for (int o = 0; o < c; ++o) {
      s.film[j].scaled_gamma[o] = s.film_out[o] * scale;
      s.film[j].beta[o] = s.film_out[c + o];
    }
  }
}

void Engine::refresh_controls() noexcept {
  Impl& s = *impl_;
  const uint32_t generation = s.generation.load(std::memory_order_acquire);
  if (generation == s.film_generation && s.film_valid && s.film_follows_controls) return;
  s.film_generation = generation;
  s.film_follows_controls = true;
  for (int i = 0; i < model_->num_controls(); ++i) s.control_scratch[i] = s.normalised[i].load(std::memory_order_relaxed);
  update_film();
}

void Engine::film_from_track(const float* const* control_track, int index) noexcept {
  Impl& s = *impl_;
  s.film_follows_controls = false;  // the next call without a track goes back to the set controls
  for (int i = 0; i < model_->num_controls(); ++i) {
    const ControlInfo& info = model_->controls()[i];
    const float value = control_track[i][index];
    if (std::isnan(value)) {
      s.control_scratch[i] = s.film_valid ? s.film_controls[i] : s.normalised[i].load(std::memory_order_relaxed);
    } else {
      s.control_scratch[i] = info.normalise(std::clamp(static_cast<double>(value), info.minimum, info.maximum));
    }
  }
  update_film();
}

// ---- frame-rate work ---------------------------------------------------------------------------------

// Pool the finished frame, FiLM it, step the LSTM and project: the frame's modulation into `out`.
void Engine::finish_frame(int j, BlockStream& bs, float* out) noexcept {
  Impl& s = *impl_;
  const BlockWeights& w = *model_->blocks_[j];
  const int P = model_->pool_size(), c = w.channels, H = w.hidden, lanes = w.lanes;
  float* pooled = s.pooled.data();
  if (model_->max_pooling()) {
    for (int o = 0; o < lanes; o += 8) {
      Lanes8 peak = load8(bs.pool.data() + o);
      for (int r = 1; r < P; ++r) {
        const Lanes8 v = load8(bs.pool.data() + static_cast<size_t>(r) * lanes + o);
        peak = v > peak ? v : peak;
      }
      store8(pooled + o, peak);
    }
  } else {
    for (int o = 0; o < lanes; o += 8) {
      Lanes8 sum = splat8(0.0f);
      for (int r = 0; r < P; ++r) sum += load8(bs.pool.data() + static_cast<size_t>(r) * lanes + o);
      store8(pooled + o, sum);
    }
  }
  float* xh = s.xh.data();
  if (w.film_hidden > 0) {
    const FilmParams& f = s.film[j];
    for (int o = 0; o < c; ++o) xh[o] = f.beta[o] + pooled[o] * f.scaled_gamma[o];
  } else {
    const float scale = frame_scale(*model_);
    for (int o = 0; o < c; ++o) xh[o] = pooled[o] * scale;
  }
  std::copy(bs.h.begin(), bs.h.end(), xh + c);
  float* gates = s.gates.data();
  affine_rows8(w.lstm_weight.data(), w.lstm_bias.data(), xh, c + H, w.gate_lanes, gates);
  for (int u = 0; u < H; ++u) {  // gate order i, f, g, o as in torch
    const float in_gate = sigmoid(gates[u]);
    const float forget_gate = sigmoid(gates[H + u]);
    const float cell_input = std::tanh(gates[2 * H + u]);
    const float out_gate = sigmoid(gates[3 * H + u]);
    bs.c[u] = forget_gate * bs.c[u] + in_gate * cell_input;
    bs.h[u] = out_gate * std::tanh(bs.c[u]);
  }
  affine_rows8(w.projection_weight.data(), w.projection_bias.data(), bs.h.data(), H, w.modulation_lanes, out);
}

// ---- the per-sample paths ----------------------------------------------------------------------------

namespace {

// Where block j writes its modulated output: block j + 1's conv input, after its cached rows
// (nullptr for the last block, which modulates only the audio path).
float* next_block_rows(PathState& path, size_t j, const std::vector<std::unique_ptr<BlockWeights>>& blocks) {
  if (!blocks[j]->modulates_next) return nullptr;
  const BlockWeights& next = *blocks[j + 1];
  return path.blocks[j + 1].conv_input.data() + static_cast<size_t>(next.kernel_size - 1) * next.in_channels;
}

// Keep the last k - 1 conv input rows of a call of `count` rows in front, for the next call.
void keep_conv_tail(const BlockWeights& w, BlockStream& bs, int count) {
  const size_t keep = static_cast<size_t>(w.kernel_size - 1) * w.in_channels;
  float* rows = bs.conv_input.data();
  std::memmove(rows, rows + static_cast<size_t>(count) * w.in_channels, keep * sizeof(float));
}

}  // namespace

// Causal: the sample at position r of frame i blends the modulation of frames i-2 and i-1 (history).
// `audio` holds the path's audio channels (modulated in place), block 0's conv input rows are filled.
void Engine::run_causal_path(PathState& path, float* const* audio, int audio_channels, int count) noexcept {
  Impl& s = *impl_;
  const int P = model_->pool_size();
  const float* interp = model_->interpolation_weights_.data();
  const int num_blocks = static_cast<int>(model_->blocks_.size());
  for (int j = 0; j < num_blocks; ++j) {
    const BlockWeights& w = *model_->blocks_[j];
    BlockStream& bs = path.blocks[j];
    const ConvKernel conv = s.conv_kernels[j];
    const int c_in = w.in_channels, c = w.channels, lanes = w.lanes;
    const int ml = w.modulation_lanes;
    float* next_rows = next_block_rows(path, j, model_->blocks_);
    float* mod = s.modulation.data();
    int phase = s.phase;
    for (int t = 0; t < count; ++t) {
      float* z = bs.pool.data() + static_cast<size_t>(phase) * lanes;
      conv(w, bs.conv_input.data() + static_cast<size_t>(t) * c_in, z);
      const float* older = bs.history.data();
      modulate_sample(older, older + ml, interp[phase], ml, c, z, mod, audio, audio_channels, t,
                      next_rows ? next_rows + static_cast<size_t>(t) * c : nullptr);
      if (++phase == P) {
        float* history = bs.history.data();
        std::copy(history + ml, history + 2 * ml, history);  // newer becomes older
        finish_frame(j, bs, history + ml);
        phase = 0;
      }
    }
    keep_conv_tail(w, bs, count);
  }
}

// Paper: a whole frame at a time; its samples blend the previous frame's modulation and its own.
void Engine::run_paper_path(PathState& path, float* const* audio, int audio_channels) noexcept {
  Impl& s = *impl_;
  const int P = model_->pool_size();
  const float* interp = model_->interpolation_weights_.data();
  const int num_blocks = static_cast<int>(model_->blocks_.size());
  for (int j = 0; j < num_blocks; ++j) {
    const BlockWeights& w = *model_->blocks_[j];
    BlockStream& bs = path.blocks[j];
    const ConvKernel conv = s.conv_kernels[j];
    const int c_in = w.in_channels, c = w.channels, lanes = w.lanes;
    const int ml = w.modulation_lanes;
    for (int t = 0; t < P; ++t) conv(w, bs.conv_input.data() + static_cast<size_t>(t) * c_in, bs.pool.data() + static_cast<size_t>(t) * lanes);
    float* current = s.new_modulation.data();
    finish_frame(j, bs, current);
    float* next_rows = next_block_rows(path, j, model_->blocks_);
    float* mod = s.modulation.data();
    const float* previous = bs.history.data() + ml;
    for (int t = 0; t < P; ++t) {
      modulate_sample(previous, current, interp[t], ml, c, bs.pool.data() + static_cast<size_t>(t) * lanes, mod, audio,
                      audio_channels, t, next_rows ? next_rows + static_cast<size_t>(t) * c : nullptr);
    }
    float* history = bs.history.data();
    std::copy(history + ml, history + 2 * ml, history);
    std::copy(current, current + ml, history + ml);
    keep_conv_tail(w, bs, P);
  }
}

// Block 0's conv input rows [x, key 0 .. key S-1] for `count` samples: the channel itself and its key
// rows, or, when linked, per sample the channel of largest magnitude (signed) and per key channel the
// largest key (signed) over the channels (first channel on ties, as torch.argmax).
void Engine::load_detector(PathState& path, const float* const* input, const float* const* key, int path_index,
                           int count) noexcept {
  const BlockWeights& first = *model_->blocks_[0];
  const int S = model_->sidechain_channels(), c_in = first.in_channels;  // c_in = 1 + S
  float* rows = path.blocks[0].conv_input.data() + static_cast<size_t>(first.kernel_size - 1) * c_in;
  if (!linked_ || num_channels_ == 1) {
    if (S == 0) {
      std::memcpy(rows, input[path_index], sizeof(float) * count);
      return;
    }
    const float* x = input[path_index];
    const float* const* own_key = key + static_cast<size_t>(path_index) * S;
    for (int t = 0; t < count; ++t) {
      float* row = rows + static_cast<size_t>(t) * c_in;
      row[0] = x[t];
      for (int k = 0; k < S; ++k) row[1 + k] = own_key[k][t];
    }
    return;
  }
  for (int t = 0; t < count; ++t) {
    float* row = rows + static_cast<size_t>(t) * c_in;
    float loudest = input[0][t];
    for (int ch = 1; ch < num_channels_; ++ch)
      if (std::fabs(input[ch][t]) > std::fabs(loudest)) loudest = input[ch][t];
    row[0] = loudest;
    for (int k = 0; k < S; ++k) {
      float loudest_key = key[k][t];
      for (int ch = 1; ch < num_channels_; ++ch) {
        const float v = key[static_cast<size_t>(ch) * S + k][t];
        if (std::fabs(v) > std::fabs(loudest_key)) loudest_key = v;
      }
      row[1 + k] = loudest_key;
    }
  }
}

// One piece of a call: count <= max(max_block_size, P) samples (and, with a control track, at most
// to the end of the current frame).
void Engine::run_piece(const float* const* input, const float* const* key, float* const* output, int count) noexcept {
  Impl& s = *impl_;
  const int P = model_->pool_size();
  if (model_->is_tcn()) {
    for (int p = 0; p < detector_paths(); ++p) {
      const int first = linked_ ? 0 : p, channels = linked_ ? num_channels_ : 1;
      float* detector = s.detector.data();
      if (!linked_ || num_channels_ == 1) {
        std::memcpy(detector, input[p], sizeof(float) * count);
      } else {
        for (int t = 0; t < count; ++t) {  // the channel of largest magnitude (signed), first on ties
          float loudest = input[0][t];
          for (int ch = 1; ch < num_channels_; ++ch)
            if (std::fabs(input[ch][t]) > std::fabs(loudest)) loudest = input[ch][t];
          detector[t] = loudest;
        }
      }
      for (int a = 0; a < channels; ++a) {
        if (output[first + a] != input[first + a]) std::memcpy(output[first + a], input[first + a], sizeof(float) * count);
        s.audio_ptrs[a] = output[first + a];
      }
      run_tcn_path(s.paths[p], s.audio_ptrs.data(), channels, detector, count);
    }
    return;  // the phase stays 0: every sample is a whole frame
  }
  if (!model_->paper_mode()) {
    for (int p = 0; p < detector_paths(); ++p) {
      load_detector(s.paths[p], input, key, p, count);
      int first = linked_ ? 0 : p, channels = linked_ ? num_channels_ : 1;
      for (int a = 0; a < channels; ++a) {
        if (output[first + a] != input[first + a]) std::memcpy(output[first + a], input[first + a], sizeof(float) * count);
        s.audio_ptrs[a] = output[first + a];
      }
      run_causal_path(s.paths[p], s.audio_ptrs.data(), channels, count);
    }
    s.phase = (s.phase + count) % P;
    return;
  }
  // paper: input waits for a whole frame, output leaves through a queue P - 1 samples behind
  const int capacity = 2 * P;
  for (int t = 0; t < count; ++t) {
    for (int ch = 0; ch < num_channels_; ++ch) s.pending[ch][s.phase] = input[ch][t];
    for (size_t r = 0; r < s.pending_key.size(); ++r) s.pending_key[r][s.phase] = key[r][t];
    if (++s.phase == P) {
      for (int ch = 0; ch < num_channels_; ++ch) {
        std::copy(s.pending[ch].begin(), s.pending[ch].end(), s.frame_audio[ch].begin());
        s.frame_input_ptrs[ch] = s.pending[ch].data();
      }
      for (size_t r = 0; r < s.pending_key.size(); ++r) s.frame_key_ptrs[r] = s.pending_key[r].data();
      for (int p = 0; p < detector_paths(); ++p) {
        load_detector(s.paths[p], s.frame_input_ptrs.data(), s.frame_key_ptrs.data(), p, P);
        const int first = linked_ ? 0 : p, channels = linked_ ? num_channels_ : 1;
        for (int a = 0; a < channels; ++a) s.audio_ptrs[a] = s.frame_audio[first + a].data();
        run_paper_path(s.paths[p], s.audio_ptrs.data(), channels);
      }
      const int write = (s.queue_read + s.queue_count) % capacity;
      for (int ch = 0; ch < num_channels_; ++ch)
        for (int i = 0; i < P; ++i) s.queue[ch][(write + i) % capacity] = s.frame_audio[ch][i];
      s.queue_count += P;
      s.phase = 0;
    }
    for (int ch = 0; ch < num_channels_; ++ch) output[ch][t] = s.queue[ch][s.queue_read];
    s.queue_read = (s.queue_read + 1) % capacity;
    --s.queue_count;
  }
}

// ---- the real-time entry points ------------------------------------------------------------------------

bool Engine::process(const float* const* input, float* const* output, int num_channels, int num_frames,
                     const float* const* sidechain, int sidechain_rows) noexcept {
  return process_with_control_track(input, output, num_channels, num_frames, nullptr, sidechain, sidechain_rows);
}

bool Engine::process_with_control_track(const float* const* input, float* const* output, int num_channels,
                                        int num_frames, const float* const* control_track,
                                        const float* const* sidechain, int sidechain_rows) noexcept {
  refusal_.store("", std::memory_order_release);
  if (num_channels != num_channels_) return refuse("num_channels differs from the prepared channel count");
  if (num_frames < 0) return refuse("num_frames is negative");
  if (input == nullptr || output == nullptr) return refuse("null input or output");
  const int S = model_->sidechain_channels();
  if (S > 0 && sidechain == nullptr) {
    return refuse("this model is keyed by a sidechain: pass its key (num_channels * sidechain_channels rows)");
  }
  if (S == 0 && (sidechain != nullptr || sidechain_rows != 0)) {
    return refuse("this model has no sidechain input: pass no key (nullptr, 0 rows)");
  }
  if (sidechain_rows != num_channels * S) {
    return refuse("the key has the wrong number of rows: a keyed model takes num_channels * sidechain_channels");
  }
  if (num_frames == 0) return true;
  for (int ch = 0; ch < num_channels; ++ch)
    if (input[ch] == nullptr || output[ch] == nullptr) return refuse("a null channel pointer");
  for (int r = 0; r < sidechain_rows; ++r)
    if (sidechain[r] == nullptr) return refuse("a null key row pointer");
  if (control_track != nullptr) {
    for (int i = 0; i < model_->num_controls(); ++i)
      if (control_track[i] == nullptr) return refuse("a null control track row");
  }
  bool finite = true;
  for (int ch = 0; ch < num_channels; ++ch) {
    const float* x = input[ch];
    for (int t = 0; t < num_frames; ++t) finite &= std::isfinite(x[t]);
  }
  for (int r = 0; r < sidechain_rows; ++r) {
    const float* x = sidechain[r];
    for (int t = 0; t < num_frames; ++t) finite &= std::isfinite(x[t]);
  }
  if (!finite) {  // mute the whole call, back to the start state, count it
    for (int c = 0; c < num_channels; ++c) std::memset(output[c], 0, sizeof(float) * num_frames);
    restore_start_state();
    nonfinite_buffers_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  const bool track = control_track != nullptr && model_->num_controls() > 0;
  if (!track) refresh_controls();
  Impl& s = *impl_;
  const int P = model_->pool_size();
  int position = 0;
  while (position < num_frames) {
    int count = std::min(num_frames - position, max_block_size_);
    if (track) {
      count = std::min(count, P - s.phase);
      if (s.phase + count == P) film_from_track(control_track, position + count - 1);
    }
    for (int ch = 0; ch < num_channels; ++ch) {
      s.piece_input[ch] = input[ch] + position;
      s.piece_output[ch] = output[ch] + position;
    }
    for (int r = 0; r < sidechain_rows; ++r) s.piece_key[r] = sidechain[r] + position;
    run_piece(s.piece_input.data(), s.piece_key.data(), s.piece_output.data(), count);
    position += count;
  }
  return true;
}

// ---- start state, reset, link ------------------------------------------------------------------------

void Engine::zero_state() noexcept {
  Impl& s = *impl_;
  for (auto& path : s.paths) {
    for (size_t j = 0; j < path.blocks.size(); ++j) {
      BlockStream& bs = path.blocks[j];
      std::fill(bs.conv_input.begin(), bs.conv_input.end(), 0.0f);
      std::fill(bs.pool.begin(), bs.pool.end(), 0.0f);
      std::fill(bs.h.begin(), bs.h.end(), 0.0f);
      std::fill(bs.c.begin(), bs.c.end(), 0.0f);
      std::fill(bs.ring.begin(), bs.ring.end(), 0.0f);
      bs.head = 0;
      const BlockWeights& w = *model_->blocks_[j];
      // the zero state's modulation is the projection of h = 0: its bias, in both frames
      std::copy(w.projection_bias.begin(), w.projection_bias.end(), bs.history.begin());
      std::copy(w.projection_bias.begin(), w.projection_bias.end(), bs.history.begin() + w.modulation_lanes);
    }
  }
  s.phase = 0;
  for (auto& p : s.pending) std::fill(p.begin(), p.end(), 0.0f);
  for (auto& p : s.pending_key) std::fill(p.begin(), p.end(), 0.0f);
  for (auto& q : s.queue) std::fill(q.begin(), q.end(), 0.0f);
  s.queue_read = 0;
  s.queue_count = model_->latency_samples();
}

static void copy_paths(const std::vector<PathState>& from, std::vector<PathState>& to) {
  for (size_t p = 0; p < from.size(); ++p) {
    for (size_t j = 0; j < from[p].blocks.size(); ++j) {
      const BlockStream& a = from[p].blocks[j];
      BlockStream& b = to[p].blocks[j];
      std::copy(a.conv_input.begin(), a.conv_input.end(), b.conv_input.begin());
      std::copy(a.pool.begin(), a.pool.end(), b.pool.begin());
      std::copy(a.h.begin(), a.h.end(), b.h.begin());
      std::copy(a.c.begin(), a.c.end(), b.c.begin());
      std::copy(a.history.begin(), a.history.end(), b.history.begin());
      std::copy(a.ring.begin(), a.ring.end(), b.ring.begin());
      b.head = a.head;
    }
  }
}

void Engine::restart() noexcept { restore_start_state(); }

void Engine::restore_start_state() noexcept {
  Impl& s = *impl_;
  copy_paths(s.start_paths, s.paths);
  s.phase = s.start_phase;
  for (size_t ch = 0; ch < s.pending.size(); ++ch) {
    std::copy(s.start_pending[ch].begin(), s.start_pending[ch].end(), s.pending[ch].begin());
    std::copy(s.start_queue[ch].begin(), s.start_queue[ch].end(), s.queue[ch].begin());
  }
  for (size_t r = 0; r < s.pending_key.size(); ++r)
    std::copy(s.start_pending_key[r].begin(), s.start_pending_key[r].end(), s.pending_key[r].begin());
  s.queue_read = s.start_queue_read;
  s.queue_count = s.start_queue_count;
}

void Engine::reset() {
  Impl& s = *impl_;
  zero_state();
  refresh_controls();
  // the start state: start_state_samples of silence at the current controls, from the zero state
  std::vector<std::vector<float>> silence(num_channels_, std::vector<float>(max_block_size_, 0.0f));
  std::vector<std::vector<float>> sink(num_channels_, std::vector<float>(max_block_size_, 0.0f));
  std::vector<const float*> in(num_channels_);
  std::vector<float*> out(num_channels_);
  for (int ch = 0; ch < num_channels_; ++ch) {
    in[ch] = silence[ch].data();
    out[ch] = sink[ch].data();
  }
  const std::vector<const float*> quiet_key(s.pending_key.size(), silence[0].data());  // a silent key
  for (int done = 0; done < model_->start_state_samples();) {
    const int count = std::min(max_block_size_, model_->start_state_samples() - done);
    run_piece(in.data(), quiet_key.data(), out.data(), count);
    done += count;
  }
  // the latency samples after a reset are silent
  for (auto& q : s.queue) std::fill(q.begin(), q.end(), 0.0f);
  s.queue_read = 0;
  s.queue_count = model_->latency_samples();
  copy_paths(s.paths, s.start_paths);
  s.start_phase = s.phase;
  s.start_pending = s.pending;
  s.start_pending_key = s.pending_key;
  s.start_queue = s.queue;
  s.start_queue_read = s.queue_read;
  s.start_queue_count = s.queue_count;
}

void Engine::set_linked(bool linked) {
  linked_ = linked;
  prepare(num_channels_, max_block_size_);
}

// ---- state snapshots (the TorchScript module's names and shapes) -----------------------------------------

std::vector<StateTensor> Engine::get_state() const {
  if (model_->is_tcn()) return get_tcn_state();
  const Impl& s = *impl_;
  const Model& m = *model_;
  const int P = m.pool_size(), D = detector_paths(), C = num_channels_;
  const bool paper = m.paper_mode();
  std::vector<StateTensor> state;
  state.push_back(StateTensor{"phase", {}, {static_cast<float>(s.phase)}});
  for (size_t j = 0; j < m.blocks_.size(); ++j) {
    const BlockWeights& w = *m.blocks_[j];
    const std::string prefix = "block" + std::to_string(j) + ".";
    const int partial = paper ? 0 : s.phase;
    StateTensor conv{prefix + "conv_cache", {D, w.kernel_size - 1, w.in_channels}, {}};
    StateTensor pool{prefix + "pool_partial", {D, partial, w.channels}, {}};
    StateTensor h{prefix + "lstm_h", {D, w.hidden}, {}};
    StateTensor c{prefix + "lstm_c", {D, w.hidden}, {}};
    StateTensor history{prefix + "modulation_history", {D, 2, w.modulation_channels}, {}};
    for (int p = 0; p < D; ++p) {
      const BlockStream& bs = s.paths[p].blocks[j];
      conv.data.insert(conv.data.end(), bs.conv_input.begin(),
                       bs.conv_input.begin() + static_cast<size_t>(w.kernel_size - 1) * w.in_channels);
      for (int r = 0; r < partial; ++r) {
        const float* row = bs.pool.data() + static_cast<size_t>(r) * w.lanes;
        pool.data.insert(pool.data.end(), row, row + w.channels);
      }
      h.data.insert(h.data.end(), bs.h.begin(), bs.h.end());
      c.data.insert(c.data.end(), bs.c.begin(), bs.c.end());
      for (int f = 0; f < 2; ++f) {
        const float* row = bs.history.data() + static_cast<size_t>(f) * w.modulation_lanes;
        history.data.insert(history.data.end(), row, row + w.modulation_channels);
      }
    }
    for (auto* t : {&conv, &pool, &h, &c, &history}) state.push_back(std::move(*t));
  }
  StateTensor pending{"pending_input", {C, paper ? s.phase : 0}, {}};
  StateTensor queue{"output_queue", {C, paper ? P - 1 - s.phase : 0}, {}};
  if (paper) {
    const int capacity = 2 * P;
    for (int ch = 0; ch < C; ++ch) {
      pending.data.insert(pending.data.end(), s.pending[ch].begin(), s.pending[ch].begin() + s.phase);
      for (int i = 0; i < s.queue_count; ++i) queue.data.push_back(s.queue[ch][(s.queue_read + i) % capacity]);
    }
  }
  state.push_back(std::move(pending));
  state.push_back(std::move(queue));
  const int S = m.sidechain_channels();
  if (S > 0) {
    StateTensor pending_key{"pending_sidechain", {C * S, paper ? s.phase : 0}, {}};
    if (paper) {
      for (const auto& row : s.pending_key)
        pending_key.data.insert(pending_key.data.end(), row.begin(), row.begin() + s.phase);
    }
    state.push_back(std::move(pending_key));
  }
  return state;
}

void Engine::set_state(const std::vector<StateTensor>& state) {
  const Model& m = *model_;
  const std::vector<std::string> names = m.state_names();
  if (state.size() != names.size()) {
    throw StateError("state has " + std::to_string(state.size()) + " tensors, this model needs " +
                     std::to_string(names.size()));
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (state[i].name != names[i]) throw StateError("state tensor " + std::to_string(i) + " is '" + state[i].name +
                                                    "', this model needs '" + names[i] + "'");
  }
  if (m.is_tcn()) {
    set_tcn_state(state);
    return;
  }
  const StateTensor& phase_tensor = state[0];
  if (phase_tensor.data.size() != 1) throw StateError("state 'phase' must be a scalar");  // any shape of 1 element
  const float phase_value = phase_tensor.data[0];
  const int P = m.pool_size();
  if (!(phase_value >= 0 && phase_value < P) || phase_value != std::floor(phase_value)) {
    throw StateError("state 'phase' " + std::to_string(phase_value) + " outside [0, pool_size)");
  }
  const int phase = static_cast<int>(phase_value);
  const bool paper = m.paper_mode();
  const int D = detector_paths(), C = num_channels_;
  // channel count and link first, with a message that says what to do
  const int S = m.sidechain_channels();
  const StateTensor& queue = state[names.size() - (S > 0 ? 2 : 1)];  // output_queue
  const int snapshot_channels = queue.shape.size() == 2 ? static_cast<int>(queue.shape[0]) : -1;
  const int snapshot_paths = state[1].shape.size() == 3 ? static_cast<int>(state[1].shape[0]) : -1;
  if (snapshot_channels != C || snapshot_paths != D) {
    const bool snapshot_linked = snapshot_paths == 1 && snapshot_channels > 1;
    throw StateError("snapshot has " + std::to_string(snapshot_channels) + " channel(s) (" +
                     (snapshot_linked ? "linked" : "unlinked") + "), the stream has " + std::to_string(C) + " (" +
                     (linked_ && C > 1 ? "linked" : "unlinked") +
                     "); process audio with that channel count and link setting (reset) first");
  }
  std::vector<std::vector<int64_t>> expected{{}};
  for (const auto& b : m.blocks_) {
    expected.push_back({D, b->kernel_size - 1, b->in_channels});
    expected.push_back({D, paper ? 0 : phase, b->channels});
    expected.push_back({D, b->hidden});
    expected.push_back({D, b->hidden});
    expected.push_back({D, 2, b->modulation_channels});
  }
  expected.push_back({C, paper ? phase : 0});
  expected.push_back({C, paper ? P - 1 - phase : 0});
  if (S > 0) expected.push_back({C * S, paper ? phase : 0});
  for (size_t i = 1; i < names.size(); ++i) {
    size_t count = 1;
    for (int64_t d : expected[i]) count *= static_cast<size_t>(d);
    if (state[i].shape != expected[i] || state[i].data.size() != count) {
      std::string shape = "[";
      for (size_t d = 0; d < expected[i].size(); ++d) shape += (d ? ", " : "") + std::to_string(expected[i][d]);
      throw StateError("state '" + names[i] + "' must have shape " + shape + "]");
    }
    for (float v : state[i].data)
      if (!std::isfinite(v)) throw StateError("state '" + names[i] + "' holds NaN or Inf");
  }
  // all checked: apply
  Impl& s = *impl_;
  s.phase = phase;
  size_t i = 1;
  for (size_t j = 0; j < m.blocks_.size(); ++j) {
    const BlockWeights& w = *m.blocks_[j];
    const size_t conv_size = static_cast<size_t>(w.kernel_size - 1) * w.in_channels;
    const int partial = paper ? 0 : phase;
    for (int p = 0; p < D; ++p) {
      BlockStream& bs = s.paths[p].blocks[j];
      std::copy_n(state[i].data.begin() + p * conv_size, conv_size, bs.conv_input.begin());
      std::fill(bs.pool.begin(), bs.pool.end(), 0.0f);
      for (int r = 0; r < partial; ++r)
        std::copy_n(state[i + 1].data.begin() + (static_cast<size_t>(p) * partial + r) * w.channels, w.channels,
                    bs.pool.begin() + static_cast<size_t>(r) * w.lanes);
      std::copy_n(state[i + 2].data.begin() + static_cast<size_t>(p) * w.hidden, w.hidden, bs.h.begin());
      std::copy_n(state[i + 3].data.begin() + static_cast<size_t>(p) * w.hidden, w.hidden, bs.c.begin());
      std::fill(bs.history.begin(), bs.history.end(), 0.0f);
      for (int f = 0; f < 2; ++f)
        std::copy_n(state[i + 4].data.begin() + (static_cast<size_t>(p) * 2 + f) * w.modulation_channels,
                    w.modulation_channels, bs.history.begin() + static_cast<size_t>(f) * w.modulation_lanes);
    }
    i += 5;
  }
  if (paper) {
    for (int ch = 0; ch < C; ++ch) {
      std::copy_n(state[i].data.begin() + static_cast<size_t>(ch) * phase, phase, s.pending[ch].begin());
      const int queued = P - 1 - phase;
      for (int q = 0; q < queued; ++q) s.queue[ch][q] = state[i + 1].data[static_cast<size_t>(ch) * queued + q];
    }
    s.queue_read = 0;
    s.queue_count = P - 1 - phase;
    for (int r = 0; r < C * S; ++r)
      std::copy_n(state[i + 2].data.begin() + static_cast<size_t>(r) * phase, phase, s.pending_key[r].begin());
  }
}


// ---- the TCN baseline ------------------------------------------------------------------------------------

// Per sample: each block writes its input row into its ring, gathers the k taps t - (k-1-i) d (oldest
// first), z = PReLU(beta + gamma * (bias + W . taps)), output z + residual; then the gain
// scale * sigmoid(bias + w . h) multiplies the path's audio channels. The same instructions for every
// sample whatever the call length, so any partition is bitwise one call.
void Engine::run_tcn_path(PathState& path, float* const* audio, int audio_channels, const float* detector,
                          int count) noexcept {
  Impl& s = *impl_;
  const Model& m = *model_;
  const int num_blocks = static_cast<int>(m.blocks_.size());
  const Lanes8 zero = splat8(0.0f);
  for (int t = 0; t < count; ++t) {
    float* in = s.block_in.data();
    float* out = s.block_out.data();
    in[0] = detector[t];
    for (int j = 0; j < num_blocks; ++j) {
      const BlockWeights& w = *m.blocks_[j];
      BlockStream& bs = path.blocks[j];
      const int c_in = w.in_channels, k = w.kernel_size, lanes = w.lanes, rows = w.context + 1;
      std::memcpy(bs.ring.data() + static_cast<size_t>(bs.head) * c_in, in, sizeof(float) * c_in);
      for (int tap = 0; tap < k; ++tap) {
        int row = bs.head - (k - 1 - tap) * w.dilation;
        if (row < 0) row += rows;
        std::memcpy(s.taps.data() + static_cast<size_t>(tap) * c_in, bs.ring.data() + static_cast<size_t>(row) * c_in,
                    sizeof(float) * c_in);
      }
      bs.head = bs.head + 1 == rows ? 0 : bs.head + 1;
      float* z = s.z.data();
      const AffineKernel affine = s.affine_kernels[j];
      affine(w.conv_weight.data(), w.conv_bias.data(), s.taps.data(), k * c_in, lanes, z);
      const float* skip = in;
      if (w.residual_projection) {
        affine(w.residual_weight.data(), w.residual_bias.data(), in, c_in, lanes, s.skip.data());
        skip = s.skip.data();
      }
      const FilmParams& f = s.film[j];
      for (int o = 0; o < lanes; o += 8) {
        Lanes8 v = load8(z + o);
        if (w.film_hidden > 0) v = load8(f.beta.data() + o) + v * load8(f.scaled_gamma.data() + o);
        const Lanes8 negative = load8(w.prelu.data() + o) * v;
        v = v > zero ? v : negative;
        store8(z + o, v);
      }
      for (int o = 0; o < w.channels; ++o) out[o] = z[o] + skip[o];
      std::swap(in, out);
    }
    float logit = m.gain_bias_;
    for (size_t i = 0; i < m.gain_weight_.size(); ++i) logit += in[i] * m.gain_weight_[i];
    const float gain = m.gain_scale_ * sigmoid(logit);
    for (int a = 0; a < audio_channels; ++a) audio[a][t] = gain * audio[a][t];
  }
}

// TCN state: "phase" (always 0) and per block conv_cache (D, (k - 1) d, c_in), oldest row first.
std::vector<StateTensor> Engine::get_tcn_state() const {
  const Impl& s = *impl_;
  const Model& m = *model_;
  const int D = detector_paths();
  std::vector<StateTensor> state;
  state.push_back(StateTensor{"phase", {}, {0.0f}});
  for (size_t j = 0; j < m.blocks_.size(); ++j) {
    const BlockWeights& w = *m.blocks_[j];
    StateTensor conv{"block" + std::to_string(j) + ".conv_cache", {D, w.context, w.in_channels}, {}};
    const int rows = w.context + 1;
    for (int p = 0; p < D; ++p) {
      const BlockStream& bs = s.paths[p].blocks[j];
      for (int r = 0; r < w.context; ++r) {  // the context rows before `head`, oldest first
        const float* row = bs.ring.data() + static_cast<size_t>((bs.head + 1 + r) % rows) * w.in_channels;
        conv.data.insert(conv.data.end(), row, row + w.in_channels);
      }
    }
    state.push_back(std::move(conv));
  }
  return state;
}

void Engine::set_tcn_state(const std::vector<StateTensor>& state) {
  const Model& m = *model_;
  const std::vector<std::string> names = m.state_names();
  if (state[0].data.size() != 1 || state[0].data[0] != 0.0f) throw StateError("state 'phase' must be 0 for a TCN");
  const int D = detector_paths();
  for (size_t j = 0; j < m.blocks_.size(); ++j) {
    const BlockWeights& w = *m.blocks_[j];
    const StateTensor& t = state[j + 1];
    const std::vector<int64_t> expected{D, w.context, w.in_channels};
    if (t.shape != expected || t.data.size() != static_cast<size_t>(D) * w.context * w.in_channels) {
      throw StateError("state '" + names[j + 1] + "' must have shape [" + std::to_string(D) + ", " +
                       std::to_string(w.context) + ", " + std::to_string(w.in_channels) + "] (" + std::to_string(D) +
                       " detector path(s): reset to the snapshot's channel count and link setting first)");
    }
    for (float v : t.data)
      if (!std::isfinite(v)) throw StateError("state '" + names[j + 1] + "' holds NaN or Inf");
  }
  Impl& s = *impl_;
  for (size_t j = 0; j < m.blocks_.size(); ++j) {
    const BlockWeights& w = *m.blocks_[j];
    const size_t size = static_cast<size_t>(w.context) * w.in_channels;
    for (int p = 0; p < D; ++p) {
      BlockStream& bs = s.paths[p].blocks[j];
      std::fill(bs.ring.begin(), bs.ring.end(), 0.0f);
      std::copy_n(state[j + 1].data.begin() + p * size, size, bs.ring.begin());
      bs.head = w.context;  // the next row goes after the restored ones
    }
  }
  s.phase = 0;
}

}  // namespace neuralcomp
