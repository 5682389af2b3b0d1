// neuralcomp-render: render an audio file through an exported neuralcomp model, buffer by buffer,
// exactly as a real-time host would, and report per-buffer timing.
//
// Exit codes: 0 ok; 1 a file could not be read/written or the model could not be loaded;
// 2 bad usage or a refused input (wrong sample rate, bad buffer size, unknown control or value).
#include <sndfile.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "neuralcomp/engine.hpp"
#ifdef NEURALCOMP_WITH_TORCH
#include "host.h"
#endif

namespace {

// What the renderer needs of a backend; planar buffers, channel c at [c * frames, (c + 1) * frames).
// `key`: a keyed model's sidechain, channels * sidechain_channels() planar rows of `frames` (else nullptr).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual void process(const float* in, float* out, int channels, int64_t frames, const float* key) = 0;
  virtual int sidechain_channels() const = 0;
  virtual void set_control(const std::string& name, double value) = 0;
  virtual void reset() = 0;
  virtual int64_t sample_rate() const = 0;
  virtual int64_t latency_samples() const = 0;
  virtual std::string mode() const = 0;
  virtual std::vector<std::string> control_names() const = 0;
  virtual std::vector<double> control_values() const = 0;
  virtual int64_t nonfinite_buffers() const = 0;
};

class NativeBackend : public Backend {
 public:
  NativeBackend(const std::string& path, int channels, int max_block)
      : engine_(neuralcomp::Model::load_file(path), channels, max_block), in_(channels), out_(channels),
        key_(static_cast<size_t>(channels) * engine_.model().sidechain_channels()) {}
  void process(const float* in, float* out, int channels, int64_t frames, const float* key) override {
    for (int c = 0; c < channels; ++c) {
      in_[c] = in + c * frames;
      out_[c] = out + c * frames;
    }
    for (size_t r = 0; r < key_.size(); ++r) key_[r] = key ? key + r * frames : nullptr;
    if (!engine_.process(in_.data(), out_.data(), channels, static_cast<int>(frames), key ? key_.data() : nullptr,
                         key ? static_cast<int>(key_.size()) : 0)) {
      throw neuralcomp::AudioInputError(std::string("the engine refused the buffer: ") + engine_.refusal());
    }
  }
  int sidechain_channels() const override { return engine_.model().sidechain_channels(); }
  void set_control(const std::string& name, double value) override { engine_.set_control(name, value); }
  void reset() override { engine_.reset(); }
  int64_t sample_rate() const override { return engine_.model().sample_rate(); }
  int64_t latency_samples() const override { return engine_.model().latency_samples(); }
  std::string mode() const override { return engine_.model().mode(); }
  std::vector<std::string> control_names() const override {
    std::vector<std::string> names;
    for (const auto& c : engine_.model().controls()) names.push_back(c.name);
    return names;
  }
  std::vector<double> control_values() const override {
    std::vector<double> values;
    for (int i = 0; i < engine_.model().num_controls(); ++i) values.push_back(engine_.get_control(i));
    return values;
  }
  int64_t nonfinite_buffers() const override { return engine_.nonfinite_buffers(); }

 private:
  neuralcomp::Engine engine_;
  std::vector<const float*> in_;
  std::vector<float*> out_;
  std::vector<const float*> key_;
};

#ifdef NEURALCOMP_WITH_TORCH
class TorchScriptBackend : public Backend {
 public:
  TorchScriptBackend(const std::string& path, int channels) : host_(path, channels) {}
  void process(const float* in, float* out, int channels, int64_t frames, const float* key) override {
    host_.process(in, out, channels, frames, key);
  }
  int sidechain_channels() const override { return static_cast<int>(host_.sidechain_channels()); }
  void set_control(const std::string& name, double value) override { host_.set_control(name, value); }
  void reset() override { host_.reset(); }
  int64_t sample_rate() const override { return host_.sample_rate(); }
  int64_t latency_samples() const override { return host_.latency_samples(); }
  std::string mode() const override { return host_.mode(); }
  std::vector<std::string> control_names() const override { return host_.control_names(); }
  std::vector<double> control_values() const override { return host_.control_values(); }
  int64_t nonfinite_buffers() const override { return host_.nonfinite_buffers(); }

 private:
  neuralcomp::StreamingHost host_;
};
#endif

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr long long kMaxBuffer = 1 << 20;
constexpr double kMaxLevelDb = 60.0;  // the trims' range, as the Python processor's

const char* const kUsage =
    "usage: neuralcomp-render MODEL IN_AUDIO OUT.wav [--buffer N] [--control NAME=VALUE]... [--warmup N]\n"
    "                         [--backend native|torchscript] [--input-level-db DB] [--output-level-db DB]\n"
    "                         [--match-calibration IN_DBU OUT_DBU] [--sidechain KEY_AUDIO]\n"
    "\n"
    "Render IN_AUDIO (any file libsndfile reads) through the neuralcomp model MODEL (a TorchScript\n"
    "file written by export.export_model), all channels as one multichannel stream, buffer by\n"
    "buffer, and write OUT.wav (32-bit float WAV, same length, channels and sample rate).\n"
    "The output is not latency-compensated (paper mode delays it by latency_samples).\n"
    "\n"
    "options:\n"
    "  --buffer N             buffer size in frames, 1..1048576 (default 512)\n"
    "  --control NAME=VALUE   set a control in user units (repeatable; default: the model's defaults)\n"
    "  --backend NAME         native (the engine, default) or torchscript (the libtorch reference host,\n"
    "                         when built with it)\n"
    "  --input-level-db DB    trim in dB applied to the input before the model, -60..60 (default 0)\n"
    "  --output-level-db DB   trim in dB applied to the model's output, -60..60 (default 0)\n"
    "  --match-calibration IN_DBU OUT_DBU\n"
    "                         your interface's level in dBu at 0 dBFS, input and output: sets the trims\n"
    "                         so that the model sees the levels of its capture (input trim = IN_DBU -\n"
    "                         capture input dBu, output trim = capture output dBu - OUT_DBU); the model\n"
    "                         must record its calibration. --input/--output-level-db override it.\n"
    "  --sidechain KEY_AUDIO  the key of a model keyed by a sidechain (required for one, refused otherwise):\n"
    "                         as many frames as IN_AUDIO at its rate, IN_AUDIO's channels x the model's\n"
    "                         sidechain channels (channel c * S + s keys input channel c); the input trim\n"
    "                         applies to it too (default: none)\n"
    "  --warmup N             silent buffers of the buffer size run before rendering, then the stream\n"
    "                         is reset (default 5; the host already warms up on load)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Prints frames, channels, buffer size, calls, per-buffer processing time p50/p99/max in\n"
    "microseconds and the real-time factor (processing time / audio duration).\n"
    "Exit status: 0 ok, 1 file or model error, 2 bad usage or refused input (sample rate, buffer\n"
    "size, controls).\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string model, input, output, sidechain;
  long long buffer = 512;
  long long warmup = 5;
  std::string backend = "native";
  std::vector<std::pair<std::string, double>> controls;
  bool has_input_level = false, has_output_level = false, match_calibration = false;
  double input_level_db = 0.0, output_level_db = 0.0;
  double user_input_dbu = 0.0, user_output_dbu = 0.0;
};

// A trim in dB as the gain the Python processor applies: the float32 of 10^(dB/20), so both agree bitwise.
float level_gain(double db) { return static_cast<float>(std::pow(10.0, db / 20.0)); }

bool parse_int(const std::string& text, long long& out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0') return false;
  out = v;
  return true;
}

bool parse_double(const std::string& text, double& out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (errno == ERANGE || end == text.c_str() || *end != '\0') return false;
  out = v;
  return true;
}

Options parse_args(int argc, char** argv, bool& help) {
  Options opt;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0) {
      const auto eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline = true;
      }
    }
    auto take_value = [&]() -> std::string {
      if (has_inline) return value;
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      help = true;
      return opt;
    } else if (arg == "--buffer") {
      const std::string v = take_value();
      if (!parse_int(v, opt.buffer) || opt.buffer < 1 || opt.buffer > kMaxBuffer) {
        throw UsageError("bad buffer size '" + v + "': must be an integer in 1.." + std::to_string(kMaxBuffer));
      }
    } else if (arg == "--backend") {
      opt.backend = take_value();
      if (opt.backend != "native" && opt.backend != "torchscript") {
        throw UsageError("bad --backend '" + opt.backend + "': native or torchscript");
      }
#ifndef NEURALCOMP_WITH_TORCH
      if (opt.backend == "torchscript") throw UsageError("this build has no libtorch host (--backend torchscript)");
#endif
    } else if (arg == "--warmup") {
      const std::string v = take_value();
      if (!parse_int(v, opt.warmup) || opt.warmup < 0 || opt.warmup > 100000) {
        throw UsageError("bad --warmup '" + v + "': must be an integer in 0..100000");
      }
    } else if (arg == "--input-level-db" || arg == "--output-level-db") {
      const std::string v = take_value();
      double db = 0;
      if (!parse_double(v, db) || !(std::fabs(db) <= kMaxLevelDb)) {
        throw UsageError("bad " + arg + " '" + v + "': must be a number of dB in -60..60");
      }
      (arg == "--input-level-db" ? opt.input_level_db : opt.output_level_db) = db;
      (arg == "--input-level-db" ? opt.has_input_level : opt.has_output_level) = true;
    } else if (arg == "--match-calibration") {
      if (has_inline || i + 2 >= argc) throw UsageError("--match-calibration needs two values: IN_DBU OUT_DBU");
      const std::string a = argv[++i], b = argv[++i];
      if (!parse_double(a, opt.user_input_dbu) || !parse_double(b, opt.user_output_dbu)) {
        throw UsageError("bad --match-calibration '" + a + " " + b + "': expected two numbers of dBu");
      }
      opt.match_calibration = true;
    } else if (arg == "--sidechain") {
      opt.sidechain = take_value();
      if (opt.sidechain.empty()) throw UsageError("--sidechain needs a file name");
    } else if (arg == "--control") {
      const std::string v = take_value();
      const auto eq = v.find('=');
      double number = 0;
      if (eq == std::string::npos || eq == 0 || !parse_double(v.substr(eq + 1), number)) {
        throw UsageError("bad --control '" + v + "': expected NAME=VALUE with a number VALUE");
      }
      opt.controls.emplace_back(v.substr(0, eq), number);
    } else if (arg.size() > 1 && arg[0] == '-') {
      throw UsageError("unknown option '" + std::string(argv[i]) + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 3) {
    throw UsageError("expected MODEL IN_AUDIO OUT.wav, got " + std::to_string(positional.size()) +
                     " positional argument(s)");
  }
  opt.model = positional[0];
  opt.input = positional[1];
  opt.output = positional[2];
  return opt;
}

struct SndfileCloser {
  void operator()(SNDFILE* f) const {
    if (f) sf_close(f);
  }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  // nearest rank
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

int run(const Options& opt) {
  {
    std::error_code ec;
    if (std::filesystem::equivalent(opt.input, opt.output, ec)) {
      std::cerr << "neuralcomp-render: the output '" << opt.output << "' is the input file; choose another path\n";
      return kExitUsage;
    }
  }
  SF_INFO in_info;
  std::memset(&in_info, 0, sizeof(in_info));
  SndfilePtr in(sf_open(opt.input.c_str(), SFM_READ, &in_info));
  if (!in) {
    std::cerr << "neuralcomp-render: cannot read '" << opt.input << "': " << sf_strerror(nullptr) << "\n";
    return kExitFailure;
  }
  const int channels = in_info.channels;
  if (channels < 1) {
    std::cerr << "neuralcomp-render: '" << opt.input << "' has no channels\n";
    return kExitFailure;
  }

  std::unique_ptr<Backend> host;
  try {
#ifdef NEURALCOMP_WITH_TORCH
    if (opt.backend == "torchscript") host = std::make_unique<TorchScriptBackend>(opt.model, channels);
#endif
    if (!host) host = std::make_unique<NativeBackend>(opt.model, channels, static_cast<int>(opt.buffer));
  } catch (const neuralcomp::ModelFileError& e) {
    std::cerr << "neuralcomp-render: " << e.what() << "\n";
    return kExitFailure;
#ifdef NEURALCOMP_WITH_TORCH
  } catch (const neuralcomp::ModelLoadError& e) {
    std::cerr << "neuralcomp-render: " << e.what() << "\n";
    return kExitFailure;
#endif
  } catch (const std::exception& e) {
    std::cerr << "neuralcomp-render: cannot load the model: " << e.what() << "\n";
    return kExitFailure;
  }

  if (in_info.samplerate != host->sample_rate()) {
    std::cerr << "neuralcomp-render: '" << opt.input << "' is at " << in_info.samplerate
              << " Hz but the model runs at " << host->sample_rate()
              << " Hz; resample the input first (no resampling is done here)\n";
    return kExitUsage;
  }

  // the key: required by a keyed model, refused by any other, and matching the input in rate, length
  // and channels (C x S)
  const int key_channels = channels * host->sidechain_channels();
  SndfilePtr key_file;
  if (host->sidechain_channels() > 0 && opt.sidechain.empty()) {
    std::cerr << "neuralcomp-render: " << opt.model << " is keyed by " << host->sidechain_channels()
              << " sidechain channel(s) per audio channel: give --sidechain KEY_AUDIO with " << key_channels
              << " channel(s) of " << in_info.frames << " frames at " << in_info.samplerate << " Hz\n";
    return kExitUsage;
  }
  if (host->sidechain_channels() == 0 && !opt.sidechain.empty()) {
    std::cerr << "neuralcomp-render: " << opt.model << " has no sidechain input; leave --sidechain out\n";
    return kExitUsage;
  }
  if (!opt.sidechain.empty()) {
    SF_INFO key_info;
    std::memset(&key_info, 0, sizeof(key_info));
    key_file.reset(sf_open(opt.sidechain.c_str(), SFM_READ, &key_info));
    if (!key_file) {
      std::cerr << "neuralcomp-render: cannot read '" << opt.sidechain << "': " << sf_strerror(nullptr) << "\n";
      return kExitFailure;
    }
    if (key_info.samplerate != in_info.samplerate || key_info.channels != key_channels ||
        key_info.frames != in_info.frames) {
      std::cerr << "neuralcomp-render: sidechain '" << opt.sidechain << "' (" << key_info.channels << " channel(s), "
                << key_info.frames << " frames at " << key_info.samplerate << " Hz) does not match the input '"
                << opt.input << "' (" << channels << " channel(s), " << in_info.frames << " frames at "
                << in_info.samplerate << " Hz): expected " << key_channels << " channel(s) (" << channels
                << " x " << host->sidechain_channels() << " sidechain channel(s) per audio channel), "
                << in_info.frames << " frames at " << in_info.samplerate << " Hz\n";
      return kExitUsage;
    }
  }

  for (const auto& [name, value] : opt.controls) {
    try {
      host->set_control(name, value);
    } catch (const std::invalid_argument& e) {
      std::cerr << "neuralcomp-render: " << e.what() << "\n";
      return kExitUsage;
    }
  }

  double input_level_db = 0.0, output_level_db = 0.0;
  if (opt.match_calibration) {
    // the capture's converter levels, from the model's metadata (the engine's entry holds it too)
    double capture_in = 0.0, capture_out = 0.0;
    try {
      const auto meta = nlohmann::json::parse(neuralcomp::Model::load_file(opt.model)->metadata_json());
      const auto& calibration = meta.at("calibration");
      capture_in = calibration.at("input_dbu_at_0dbfs").get<double>();
      capture_out = calibration.at("output_dbu_at_0dbfs").get<double>();
    } catch (const std::exception&) {
      std::cerr << "neuralcomp-render: " << opt.model << " records no level calibration (import the captures with "
                << "--input-dbu-at-0dbfs and --output-dbu-at-0dbfs); set --input-level-db and --output-level-db "
                << "instead\n";
      return kExitUsage;
    }
    input_level_db = opt.user_input_dbu - capture_in;
    output_level_db = capture_out - opt.user_output_dbu;
  }
  if (opt.has_input_level) input_level_db = opt.input_level_db;
  if (opt.has_output_level) output_level_db = opt.output_level_db;
  if (!(std::fabs(input_level_db) <= kMaxLevelDb) || !(std::fabs(output_level_db) <= kMaxLevelDb)) {
    std::cerr << "neuralcomp-render: the trims " << input_level_db << " / " << output_level_db
              << " dB are outside -60..60 dB\n";
    return kExitUsage;
  }
  const float gain_in = level_gain(input_level_db), gain_out = level_gain(output_level_db);
  const bool trim_in = input_level_db != 0.0, trim_out = output_level_db != 0.0;

  const int64_t buffer = opt.buffer;
  std::vector<float> interleaved(static_cast<size_t>(buffer) * channels);
  std::vector<float> planar_in(static_cast<size_t>(buffer) * channels);
  std::vector<float> planar_out(static_cast<size_t>(buffer) * channels);
  std::vector<float> key_interleaved(static_cast<size_t>(buffer) * key_channels);
  std::vector<float> planar_key(static_cast<size_t>(buffer) * key_channels);
  const float* key = key_channels > 0 ? planar_key.data() : nullptr;

  try {
    host->reset();  // start state at the chosen controls
    if (opt.warmup > 0) {
      std::fill(planar_in.begin(), planar_in.end(), 0.0f);
      for (long long i = 0; i < opt.warmup; ++i) {
        host->process(planar_in.data(), planar_out.data(), channels, buffer, key);  // a silent key
      }
      host->reset();
    }
  } catch (const std::exception& e) {
    std::cerr << "neuralcomp-render: warm-up failed: " << e.what() << "\n";
    return kExitFailure;
  }

  SF_INFO out_info;
  std::memset(&out_info, 0, sizeof(out_info));
  out_info.samplerate = in_info.samplerate;
  out_info.channels = channels;
  out_info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SndfilePtr out(sf_open(opt.output.c_str(), SFM_WRITE, &out_info));
  if (!out) {
    std::cerr << "neuralcomp-render: cannot write '" << opt.output << "': " << sf_strerror(nullptr) << "\n";
    return kExitFailure;
  }

  std::vector<double> times_us;
  if (in_info.frames > 0) times_us.reserve(static_cast<size_t>(in_info.frames / buffer + 1));
  int64_t total_frames = 0;
  double total_seconds = 0.0;
  while (true) {
    const sf_count_t got = sf_readf_float(in.get(), interleaved.data(), buffer);
    if (got <= 0) break;
    const int64_t n = got;
    for (int64_t f = 0; f < n; ++f) {
      for (int c = 0; c < channels; ++c) planar_in[c * n + f] = interleaved[f * channels + c];
    }
    if (trim_in) {
      for (int64_t i = 0; i < n * channels; ++i) planar_in[i] *= gain_in;
    }
    if (key_file) {
      if (sf_readf_float(key_file.get(), key_interleaved.data(), n) != n) {
        std::cerr << "neuralcomp-render: sidechain '" << opt.sidechain << "' ended before the input, at frame "
                  << total_frames << "\n";
        return kExitFailure;
      }
      for (int64_t f = 0; f < n; ++f) {
        for (int c = 0; c < key_channels; ++c) planar_key[c * n + f] = key_interleaved[f * key_channels + c];
      }
      if (trim_in) {  // the same converter as the input (as the Python processor trims both)
        for (int64_t i = 0; i < n * key_channels; ++i) planar_key[i] *= gain_in;
      }
    }
    const auto start = std::chrono::steady_clock::now();
    try {
      host->process(planar_in.data(), planar_out.data(), channels, n, key);
    } catch (const std::exception& e) {
      std::cerr << "neuralcomp-render: processing failed at frame " << total_frames << ": " << e.what() << "\n";
      return kExitFailure;
    }
    if (trim_out) {
      for (int64_t i = 0; i < n * channels; ++i) planar_out[i] *= gain_out;
    }
    const auto stop = std::chrono::steady_clock::now();
    const double us = std::chrono::duration<double, std::micro>(stop - start).count();
    times_us.push_back(us);
    total_seconds += us * 1e-6;
    for (int64_t f = 0; f < n; ++f) {
      for (int c = 0; c < channels; ++c) interleaved[f * channels + c] = planar_out[c * n + f];
    }
    if (sf_writef_float(out.get(), interleaved.data(), n) != n) {
      std::cerr << "neuralcomp-render: write to '" << opt.output << "' failed: " << sf_strerror(out.get()) << "\n";
      return kExitFailure;
    }
    total_frames += n;
  }
  if (sf_error(in.get()) != SF_ERR_NO_ERROR) {
    std::cerr << "neuralcomp-render: read error in '" << opt.input << "': " << sf_strerror(in.get()) << "\n";
    return kExitFailure;
  }
  out.reset();  // close: finalises the WAV header

  std::vector<double> sorted = times_us;
  std::sort(sorted.begin(), sorted.end());
  const double duration = static_cast<double>(total_frames) / in_info.samplerate;
  std::ostringstream controls;
  const auto names = host->control_names();
  const auto values = host->control_values();
  for (size_t i = 0; i < names.size(); ++i) controls << (i ? ", " : "") << names[i] << "=" << values[i];

  std::cout << std::fixed;
  std::cout << "backend:        " << opt.backend << "\n";
  std::cout << "model:          " << opt.model << " (mode " << host->mode() << ", latency " << host->latency_samples()
            << " samples)\n";
  if (key_file) std::cout << "sidechain:      " << opt.sidechain << "\n";
  std::cout << "controls:       " << (names.empty() ? std::string("(none)") : controls.str()) << "\n";
  std::cout << std::setprecision(2) << "level trims:    input " << input_level_db << " dB, output " << output_level_db
            << " dB\n";
  std::cout << "output:         " << opt.output << "\n";
  std::cout << "frames:         " << total_frames << "\n";
  std::cout << "channels:       " << channels << "\n";
  std::cout << "sample rate:    " << in_info.samplerate << "\n";
  std::cout << "buffer size:    " << buffer << "\n";
  std::cout << "calls:          " << times_us.size() << "\n";
  std::cout << std::setprecision(1);
  std::cout << "per-buffer us:  p50 " << percentile(sorted, 0.50) << "  p99 " << percentile(sorted, 0.99) << "  max "
            << (sorted.empty() ? 0.0 : sorted.back()) << "\n";
  std::cout << std::setprecision(4);
  std::cout << "processing s:   " << total_seconds << "\n";
  std::cout << "audio s:        " << duration << "\n";
  std::cout << "real-time factor: " << (duration > 0 ? total_seconds / duration : 0.0) << "\n";
  if (host->nonfinite_buffers() > 0) {
    std::cout << "non-finite buffers muted: " << host->nonfinite_buffers() << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  bool help = false;
  try {
    opt = parse_args(argc, argv, help);
  } catch (const UsageError& e) {
    std::cerr << "neuralcomp-render: " << e.what() << "\n\n" << kUsage;
    return kExitUsage;
  }
  if (help) {
    std::cout << kUsage;
    return 0;
  }
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::cerr << "neuralcomp-render: " << e.what() << "\n";
    return kExitFailure;
  }
}
