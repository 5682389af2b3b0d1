// Shared helpers of the engine's ctest programs: checks that say what failed, the exported test
// models, planar buffers, reproducible program material and buffer partitions.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace nctest {

// A failed check: the test program prints it and exits non-zero.
struct CheckFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check(bool condition, const std::string& what) {
  if (!condition) throw CheckFailure(what);
}

// Runs named test cases; one failure does not stop the others. Returns the process exit code.
class Runner {
 public:
  void run(const std::string& name, const std::function<void()>& body) {
    std::fprintf(stderr, "[ RUN  ] %s\n", name.c_str());
    const auto start = std::chrono::steady_clock::now();
    try {
      body();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "[  OK  ] %s (%.2f s)\n", name.c_str(), seconds);
    } catch (const std::exception& e) {
      ++failures_;
      std::fprintf(stderr, "[ FAIL ] %s: %s\n", name.c_str(), e.what());
    }
  }
  void skip(const std::string& name, const std::string& why) {
    std::fprintf(stderr, "[ SKIP ] %s: %s\n", name.c_str(), why.c_str());
  }
  int exit_code() const {
    std::fprintf(stderr, failures_ ? "%d test case(s) FAILED\n" : "all test cases passed\n", failures_);
    return failures_ ? 1 : 0;
  }

 private:
  int failures_ = 0;
};

// The models the `export_test_models` fixture writes: DIR/PRESET_MODE_cN.ts.
inline std::string model_path(const std::string& dir, const std::string& preset, const std::string& mode, int controls) {
  return dir + "/" + preset + "_" + mode + "_c" + std::to_string(controls) + ".ts";
}

// A model keyed by `keys` sidechain channels (export_test_models.py's KEYED); keys = 0: model_path.
inline std::string model_path(const std::string& dir, const std::string& preset, const std::string& mode, int controls,
                              int keys) {
  if (keys == 0) return model_path(dir, preset, mode, controls);
  return dir + "/" + preset + "_" + mode + "_c" + std::to_string(controls) + "_sk" + std::to_string(keys) + ".ts";
}

inline std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot read " + path);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

// The seed for this run: NEURALCOMP_TEST_SEED when set (to replay a failure), else a fixed default.
inline uint64_t test_seed(uint64_t fallback) {
  const char* text = std::getenv("NEURALCOMP_TEST_SEED");
  return text ? std::strtoull(text, nullptr, 0) : fallback;
}

// Planar audio: channels x frames, with the pointer arrays the engine takes.
struct Planar {
  std::vector<std::vector<float>> data;
  std::vector<const float*> in;
  std::vector<float*> out;

  Planar(int channels, size_t frames) : data(channels, std::vector<float>(frames, 0.0f)) { point(0); }
  int channels() const { return static_cast<int>(data.size()); }
  size_t frames() const { return data.empty() ? 0 : data[0].size(); }
  // Pointers to the frames starting at `offset`.
  void point(size_t offset) {
    in.resize(data.size());
    out.resize(data.size());
    for (size_t c = 0; c < data.size(); ++c) {
      in[c] = data[c].data() + offset;
      out[c] = data[c].data() + offset;
    }
  }
};

// Program material a compressor reacts to: tone steps, noise bursts at several levels, silence,
// decays, a different mix per channel (so a linked detector switches channels).
inline Planar program_material(int channels, size_t frames, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Planar signal(channels, frames);
  for (int c = 0; c < channels; ++c) {
    size_t t = 0;
    while (t < frames) {
      const size_t length = std::min(frames - t, static_cast<size_t>(200 + rng() % 3000));
      const int kind = static_cast<int>(rng() % 4);
      const float level = std::pow(10.0f, -static_cast<float>(rng() % 50) / 20.0f);
      const float frequency = 0.002f + 0.1f * static_cast<float>(rng() % 1000) / 1000.0f;
      for (size_t i = 0; i < length; ++i) {
        float v = 0.0f;
        if (kind == 0) v = level * std::sin(6.2831853f * frequency * static_cast<float>(i));
        if (kind == 1) v = level * uniform(rng);
        if (kind == 2) v = level * uniform(rng) * std::exp(-static_cast<float>(i) / 300.0f);
        // kind 3: silence
        signal.data[c][t + i] = v;
      }
      t += length;
    }
  }
  return signal;
}

// Buffer sizes that add up to `total`: `pattern` repeated (the last one cut to fit).
inline std::vector<int> repeat_sizes(const std::vector<int>& pattern, size_t total) {
  std::vector<int> sizes;
  size_t done = 0;
  for (size_t i = 0; done < total; ++i) {
    const int size = static_cast<int>(std::min<size_t>(pattern[i % pattern.size()], total - done));
    sizes.push_back(size);
    done += size;
  }
  return sizes;
}

// Random buffer sizes 1..maximum adding up to `total`, log-uniform so that short buffers are common.
inline std::vector<int> random_sizes(std::mt19937_64& rng, size_t total, int maximum) {
  std::uniform_real_distribution<double> exponent(0.0, std::log(static_cast<double>(maximum) + 0.999));
  std::vector<int> sizes;
  size_t done = 0;
  while (done < total) {
    const int size = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::exp(exponent(rng))), total - done));
    sizes.push_back(std::max(size, 1));
    done += sizes.back();
  }
  return sizes;
}

inline std::string describe_sizes(const std::vector<int>& sizes) {
  std::ostringstream text;
  for (size_t i = 0; i < sizes.size() && i < 12; ++i) text << (i ? "," : "") << sizes[i];
  if (sizes.size() > 12) text << ",... (" << sizes.size() << " buffers)";
  return text.str();
}

// First (channel, frame) where a and b differ bitwise, as text; empty when equal.
inline std::string first_difference(const Planar& a, const Planar& b) {
  if (a.channels() != b.channels() || a.frames() != b.frames()) return "different shapes";
  for (int c = 0; c < a.channels(); ++c) {
    for (size_t t = 0; t < a.frames(); ++t) {
      const float x = a.data[c][t], y = b.data[c][t];
      if (std::memcmp(&x, &y, sizeof x) != 0) {
        std::ostringstream text;
        text.precision(9);
        text << "channel " << c << " sample " << t << ": " << x << " vs " << y;
        return text.str();
      }
    }
  }
  return "";
}

}  // namespace nctest
