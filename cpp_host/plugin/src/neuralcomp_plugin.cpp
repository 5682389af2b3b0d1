// A neuralcomp model as a DPF plugin (VST3, CLAP, LV2 from this one source).
//
// The exported model is compiled into the binary (embedded_model.S) and run by the native engine
// through its C API. Parameters: the model's controls (names, units, ranges, log mappings from the
// model's metadata, written into nc_plugin_identity.h at build time), then input gain, output gain,
// mix, linked and bypass, and one output parameter counting the buffers muted for NaN/Inf input.
//
// Signal path per sample: dry = input delayed by the reported latency; wet = engine(input * input
// gain), resampled host -> model -> host when the rates differ; out = (wet * mix + dry * (1 - mix)) *
// output gain. Gains and mix move in 20 ms linear ramps (bypass ramps mix to 0), computed per sample,
// so the output never depends on how the host cuts its buffers. At 0 dB gains and 100 % mix the
// output is bitwise the engine's. Model controls go straight to the engine (atomics) and take effect
// at the next pooling frame, as in every neuralcomp host.
//
// `linked` switches between two engines prepared up front (one per stereo mode), so the switch is
// real-time safe: the newly active engine restarts from its start state (a copy, no allocation).
// NaN/Inf input mutes the 512-sample step that holds it and counts it; the engine goes back to its
// start state, and at other host rates so do the resamplers, as the Python host does.
//
// A model keyed by a sidechain (NC_PLUGIN_SIDECHAIN = S > 0) gets channels x S sidechain input ports
// after the audio ones (kAudioPortIsSidechain: a VST3 sidechain bus, an lv2:isSideChain port, a CLAP
// sidechain port); port c * S + s keys channel c. The key takes the input gain (the same converter, as the
// Python host trims it), goes through the same resamplers as the audio, and feeds the engine's
// modulation path only; NaN/Inf in it mutes the step like NaN/Inf in the audio.
//
// A damaged bundle (embedded model changed or refused by the engine) still loads: it passes the
// input through unchanged and says why on stderr and in its description.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "DistrhoPlugin.hpp"
#include "neuralcomp/engine_c.h"
#include "rate_adapter.hpp"

extern "C" const unsigned char nc_embedded_model[];
extern "C" const unsigned char nc_embedded_model_end[];

START_NAMESPACE_DISTRHO

namespace {

struct ControlSpec {
  const char* name;
  const char* symbol;
  const char* unit;
  float minimum, maximum, default_value;
  bool log_mapping;
};

#define NC_CONTROL(name, symbol, unit, lo, hi, def, log) {name, symbol, unit, lo, hi, def, log != 0},
const ControlSpec kControls[] = {NC_PLUGIN_CONTROLS{nullptr, nullptr, nullptr, 0, 0, 0, false}};
#undef NC_CONTROL
constexpr uint32_t kNumControls = sizeof(kControls) / sizeof(kControls[0]) - 1;

enum ExtraParameter : uint32_t {
  kInputGain = kNumControls,
  kOutputGain,
  kMix,
  kLinked,
  kBypass,
  kNonfiniteBuffers,  // output
  kNumParameters
};

constexpr int kChannels = NC_PLUGIN_CHANNELS;  // 1 or 2, chosen at build time
constexpr int kKeyChannels = NC_PLUGIN_CHANNELS * NC_PLUGIN_SIDECHAIN;  // sidechain inputs (0: unkeyed model)
constexpr int kEngineRows = kChannels + kKeyChannels;                   // what goes through the resamplers
constexpr int kChunk = 512;            // host samples per internal step (any host size is split into these)
constexpr double kRampSeconds = 0.02;  // gain and mix smoothing
constexpr float kGainMinDb = -24.0f, kGainMaxDb = 24.0f;

// CRC-32 (zlib's polynomial), as zlib.crc32 computes it when the plugin is built.
uint32_t crc32(const unsigned char* data, size_t size) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

float db_to_gain(float db) { return db == 0.0f ? 1.0f : static_cast<float>(std::pow(10.0, db / 20.0)); }

// Per-sample linear ramp to a target; exactly at the target once the ramp ends.
class Ramp {
 public:
  void jump(float value) {
    target_ = current_ = value;
    remaining_ = 0;
  }
  void set_target(float value, int samples) {
    if (value == target_) return;
    target_ = value;
    remaining_ = std::max(samples, 1);
    step_ = (target_ - current_) / static_cast<float>(remaining_);
  }
  bool settled_at(float value) const { return remaining_ == 0 && current_ == value; }
  float next() {
    if (remaining_ > 0 && --remaining_ == 0)
      current_ = target_;
    else if (remaining_ > 0)
      current_ += step_;
    return current_;
  }

 private:
  float target_ = 0.0f, current_ = 0.0f, step_ = 0.0f;
  int remaining_ = 0;
};

}  // namespace

class NeuralcompPlugin : public Plugin {
 public:
  NeuralcompPlugin() : Plugin(kNumParameters, 0, 0) {
    for (uint32_t i = 0; i < kNumControls; ++i) values_[i] = kControls[i].default_value;
    values_[kInputGain] = 0.0f;
    values_[kOutputGain] = 0.0f;
    values_[kMix] = 100.0f;
    values_[kLinked] = 0.0f;
    values_[kBypass] = 0.0f;
    values_[kNonfiniteBuffers] = 0.0f;
    load_model();
    activate();  // size everything for the current rate, so a host that never activates still works
  }

  ~NeuralcompPlugin() override {
    for (nc_engine* engine : engines_)
      if (engine != nullptr) nc_engine_free(engine);
    if (model_ != nullptr) nc_model_free(model_);
  }

 protected:
  // ---- information ----------------------------------------------------------------------------
  const char* getLabel() const override { return NC_PLUGIN_LABEL; }
  const char* getDescription() const override { return description_.c_str(); }
  const char* getMaker() const override { return "neuralcomp"; }
  const char* getHomePage() const override { return "https://github.com/neuralcomp/neuralcomp"; }
  const char* getLicense() const override { return "ISC"; }
  uint32_t getVersion() const override { return d_version(1, 0, 0); }
  int64_t getUniqueId() const override { return NC_PLUGIN_UNIQUE_ID; }

  void initAudioPort(bool input, uint32_t index, AudioPort& port) override {
    if (input && index >= static_cast<uint32_t>(kChannels)) {  // a keyed model's sidechain inputs
      port.hints = kAudioPortIsSidechain;
      port.groupId = kPortGroupNone;
      port.name = "Sidechain ";
      port.name += String(index - kChannels + 1);
      port.symbol = "sidechain_";
      port.symbol += String(index - kChannels + 1);
      return;
    }
    port.groupId = kChannels == 2 ? kPortGroupStereo : kPortGroupMono;
    Plugin::initAudioPort(input, index, port);
  }

  void initParameter(uint32_t index, Parameter& p) override {
    p.hints = kParameterIsAutomatable;
    if (index < kNumControls) {
      const ControlSpec& c = kControls[index];
      p.name = c.name;
      p.symbol = c.symbol;
      p.unit = c.unit;
      p.ranges = ParameterRanges(c.default_value, c.minimum, c.maximum);
      if (c.log_mapping) p.hints |= kParameterIsLogarithmic;
      p.description = "Model control; takes effect at the next pooling frame";
      return;
    }
    switch (index) {
      case kInputGain:
      case kOutputGain:
        p.name = index == kInputGain ? "input gain" : "output gain";
        p.symbol = index == kInputGain ? "input_gain" : "output_gain";
        p.unit = "dB";
        p.ranges = ParameterRanges(0.0f, kGainMinDb, kGainMaxDb);
        break;
      case kMix:
        p.name = "mix";
        p.symbol = "mix";
        p.unit = "%";
        p.ranges = ParameterRanges(100.0f, 0.0f, 100.0f);
        break;
      case kLinked:
        p.name = "linked";
        p.symbol = "linked";
        p.hints = kParameterIsBoolean | kParameterIsInteger;  // restarts the stream: a setting, not for automation
        p.ranges = ParameterRanges(0.0f, 0.0f, 1.0f);
        p.description = "Stereo link: one gain computation for both channels (switching restarts the stream)";
        break;
      case kBypass:
        p.initDesignation(kParameterDesignationBypass);
        break;
      case kNonfiniteBuffers:
        p.name = "nonfinite buffers";
        p.symbol = "nonfinite_buffers";
        p.hints = kParameterIsOutput | kParameterIsInteger;
        p.ranges = ParameterRanges(0.0f, 0.0f, 1e9f);
        p.description = "Internal buffers muted because the input held NaN or Inf";
        break;
      default:
        break;
    }
  }

  float getParameterValue(uint32_t index) const override {
    if (index == kNonfiniteBuffers) return static_cast<float>(nonfinite_buffers_);
    return index < kNumParameters ? values_[index] : 0.0f;
  }

  void setParameterValue(uint32_t index, float value) override {
    if (index >= kNumParameters || index == kNonfiniteBuffers || std::isnan(value)) return;
    if (index < kNumControls) {
      value = std::min(std::max(value, kControls[index].minimum), kControls[index].maximum);
      for (nc_engine* engine : engines_)
        if (engine != nullptr) nc_engine_set_control(engine, static_cast<int>(index), value);
    } else if (index == kInputGain || index == kOutputGain) {
      value = std::min(std::max(value, kGainMinDb), kGainMaxDb);
    } else if (index == kMix) {
      value = std::min(std::max(value, 0.0f), 100.0f);
    } else {
      value = value > 0.5f ? 1.0f : 0.0f;
    }
    values_[index] = value;
  }

  // ---- processing -------------------------------------------------------------------------------
  // A new maximum block size alone keeps the stream (nothing here depends on it; hosts such as
  // pedalboard re-prepare when a call is longer than any before, mid-stream). Every other
  // (re)activation, such as a host's reset, starts from the start state.
  void bufferSizeChanged(uint32_t) override { keep_stream_ = true; }

  void activate() override {
    const int model_rate = engine_ != nullptr ? nc_model_sample_rate(model_) : NC_MODEL_SAMPLE_RATE;
    int host_rate = static_cast<int>(std::lround(getSampleRate()));
    if (host_rate < 1) host_rate = model_rate;  // e.g. a metadata-only instance
    const bool keep = keep_stream_ && host_rate == prepared_rate_;
    keep_stream_ = false;
    if (keep) {
      setLatency(static_cast<uint32_t>(latency_));
      return;
    }
    prepared_rate_ = host_rate;
    adapter_.prepare(host_rate, model_rate, kEngineRows, kChunk);
    latency_ = adapter_.total_latency(engine_ != nullptr ? nc_model_latency_samples(model_) : NC_MODEL_LATENCY);
    if (engine_ != nullptr) {
      for (nc_engine* engine : engines_)
        nc_engine_prepare(engine, kChannels, adapter_.max_model_block());  // resets to the start state
      linked_ = values_[kLinked] > 0.5f;
      engine_ = engines_[linked_ ? 1 : 0];
    }
    setLatency(static_cast<uint32_t>(latency_));
    ramp_samples_ = static_cast<int>(std::lround(kRampSeconds * host_rate));
    input_gain_.jump(db_to_gain(values_[kInputGain]));
    output_gain_.jump(db_to_gain(values_[kOutputGain]));
    mix_.jump(mix_target());
    const size_t ring = static_cast<size_t>(latency_ + kChunk);
    for (int c = 0; c < kChannels; ++c) dry_[c].assign(ring, 0.0f);
    for (int r = 0; r < kEngineRows; ++r) {
      wet_[r].assign(kChunk, 0.0f);
      wet_ptrs_[r] = wet_[r].data();
    }
    dry_write_ = 0;
    gains_in_.assign(kChunk, 1.0f);
    gains_out_.assign(kChunk, 1.0f);
    mixes_.assign(kChunk, 1.0f);
  }

  void run(const float** inputs, float** outputs, uint32_t frames) override {
    if (engine_ != nullptr && (values_[kLinked] > 0.5f) != linked_) {
      linked_ = !linked_;
      engine_ = engines_[linked_ ? 1 : 0];  // both prepared in activate(): a pointer swap and a copy
      nc_engine_restart(engine_);
    }
    input_gain_.set_target(db_to_gain(values_[kInputGain]), ramp_samples_);
    output_gain_.set_target(db_to_gain(values_[kOutputGain]), ramp_samples_);
    mix_.set_target(mix_target(), ramp_samples_);
    for (uint32_t offset = 0; offset < frames; offset += kChunk) {
      const int n = static_cast<int>(std::min<uint32_t>(kChunk, frames - offset));
      process_chunk(inputs, outputs, offset, n);
    }
  }

 private:
  float mix_target() const { return values_[kBypass] > 0.5f || engine_ == nullptr ? 0.0f : values_[kMix] / 100.0f; }

  void process_chunk(const float** inputs, float** outputs, uint32_t offset, int n) noexcept {
    bool finite = true;
    for (int c = 0; c < kEngineRows; ++c)  // the key too
      if (inputs[c] != nullptr)
        for (int t = 0; t < n; ++t) finite = finite && std::isfinite(inputs[c][offset + t]);
    if (!finite) ++nonfinite_buffers_;
    for (int t = 0; t < n; ++t) {
      gains_in_[t] = input_gain_.next();
      gains_out_[t] = output_gain_.next();
      mixes_[t] = mix_.next();
    }
    const bool unity_in = input_gain_.settled_at(1.0f) && gains_in_[0] == 1.0f;
    // Wet input, dry into the delay line. At the model's rate the engine mutes a non-finite step itself,
    // bitwise as the bare engine. Through the resamplers the step is not processed at all: the resamplers
    // and the model go back to their start state, so the next step comes out as after a fresh start, as
    // in the Python host (Processor at other rates).
    const bool restart_stream = !finite && !adapter_.passthrough();
    if (restart_stream && engine_ != nullptr) {
      adapter_.reset();
      nc_engine_restart(engine_);
    }
    const int ring = static_cast<int>(dry_[0].size());
    for (int c = 0; c < kChannels; ++c) {
      const float* in = inputs[c] + offset;
      float* wet = wet_[c].data();
      for (int t = 0; t < n; ++t) wet[t] = restart_stream ? 0.0f : (unity_in ? in[t] : in[t] * gains_in_[t]);
      float* dry = dry_[c].data();
      int w = dry_write_;
      for (int t = 0; t < n; ++t) {
        dry[w] = finite ? in[t] : 0.0f;
        w = w + 1 == ring ? 0 : w + 1;
      }
    }
    for (int k = kChannels; k < kEngineRows; ++k) {  // the key: the input gain too, no dry path
      float* key = wet_[k].data();
      if (inputs[k] == nullptr) {  // a host that leaves the sidechain unconnected: a silent key
        std::fill(key, key + n, 0.0f);
        continue;
      }
      const float* in = inputs[k] + offset;
      for (int t = 0; t < n; ++t) key[t] = restart_stream ? 0.0f : (unity_in ? in[t] : in[t] * gains_in_[t]);
    }
    if (engine_ != nullptr && !restart_stream) adapter_.process(wet_ptrs_, n, &NeuralcompPlugin::run_engine, this);
    const bool pure_wet = mix_.settled_at(1.0f) && mixes_[0] == 1.0f;
    const bool unity_out = output_gain_.settled_at(1.0f) && gains_out_[0] == 1.0f;
    for (int c = 0; c < kChannels; ++c) {
      const float* wet = wet_[c].data();
      const float* dry = dry_[c].data();
      float* out = outputs[c] + offset;
      int r = dry_write_ - latency_;
      if (r < 0) r += ring;
      for (int t = 0; t < n; ++t) {
        float y;
        if (!finite)
          y = 0.0f;
        else if (pure_wet)
          y = wet[t];
        else
          y = wet[t] * mixes_[t] + dry[r] * (1.0f - mixes_[t]);
        out[t] = unity_out ? y : y * gains_out_[t];
        r = r + 1 == ring ? 0 : r + 1;
      }
    }
    dry_write_ = (dry_write_ + n) % ring;
  }

  static void run_engine(void* context, float* const* audio, int count) {
    auto* self = static_cast<NeuralcompPlugin*>(context);
    if (kKeyChannels == 0) {
      nc_engine_process(self->engine_, audio, audio, kChannels, count);
    } else {  // rows after the audio are the key; only the audio rows are written
      nc_engine_process_keyed(self->engine_, audio, audio, kChannels, count, audio + kChannels, kKeyChannels);
    }
  }

  void load_model() {
    const unsigned char* data = nc_embedded_model;
    const size_t size = static_cast<size_t>(nc_embedded_model_end - nc_embedded_model);
    char error[512] = {0};
    std::string reason;
    if (crc32(data, size) != static_cast<uint32_t>(NC_MODEL_CRC32)) {
      reason = "the embedded model's checksum does not match (the plugin binary was modified or damaged)";
    } else if ((model_ = nc_model_load_memory(data, size, error, sizeof error)) == nullptr) {
      reason = std::string("the engine refused the embedded model: ") + error;
    } else if (nc_model_num_controls(model_) != static_cast<int>(kNumControls)) {
      reason = "the embedded model's controls differ from the plugin's parameters";
    } else if (nc_model_sidechain_channels(model_) != NC_PLUGIN_SIDECHAIN) {
      reason = "the embedded model's sidechain channels differ from the plugin's sidechain inputs";
    } else if ((engines_[0] = nc_engine_create(model_, kChannels, kChunk, error, sizeof error)) == nullptr ||
               (engines_[1] = nc_engine_create(model_, kChannels, kChunk, error, sizeof error)) == nullptr) {
      reason = std::string("the engine could not start: ") + error;
    } else if (nc_engine_set_linked(engines_[1], 1) != 0) {
      reason = "the engine could not link the channels";
    }
    if (reason.empty()) {
      engine_ = engines_[0];
      for (nc_engine* engine : engines_)
        for (uint32_t i = 0; i < kNumControls; ++i) nc_engine_set_control(engine, static_cast<int>(i), values_[i]);
      description_ = "neural model of a compressor (neuralcomp)";
      return;
    }
    for (nc_engine*& engine : engines_) {
      if (engine != nullptr) nc_engine_free(engine);
      engine = nullptr;
    }
    if (model_ != nullptr) {
      nc_model_free(model_);
      model_ = nullptr;
    }
    description_ = "DAMAGED: " + reason + "; audio passes through unchanged";
    std::fprintf(stderr, "neuralcomp plugin '%s': %s; it passes audio through unchanged\n", DISTRHO_PLUGIN_NAME,
                 reason.c_str());
  }

  nc_model* model_ = nullptr;
  nc_engine* engines_[2] = {nullptr, nullptr};  // unlinked, linked
  nc_engine* engine_ = nullptr;                  // the active one; null when the bundle is damaged
  std::string description_;
  float values_[kNumParameters] = {};
  bool linked_ = false;
  bool keep_stream_ = false;
  int prepared_rate_ = 0;
  int64_t nonfinite_buffers_ = 0;
  int latency_ = 0;
  int ramp_samples_ = 1;
  neuralcomp_plugin::RateAdapter adapter_;
  Ramp input_gain_, output_gain_, mix_;
  std::vector<float> gains_in_, gains_out_, mixes_;
  std::vector<float> wet_[kEngineRows];  // audio rows, then the key rows
  float* wet_ptrs_[kEngineRows] = {};
  std::vector<float> dry_[kChannels];  // ring: the raw input, read `latency_` samples later
  int dry_write_ = 0;

  DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(NeuralcompPlugin)
};

Plugin* createPlugin() { return new NeuralcompPlugin(); }

END_NAMESPACE_DISTRHO
