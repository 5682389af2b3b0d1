// Exactness of the native engine: a stream cut into any buffers, with controls changed at buffer
// boundaries (set_control), equals one call with the same controls as a per-sample track, bit for
// bit; every buffer size 1..130 on one model; state snapshots continue bitwise; bad calls and bad
// snapshots are refused with the typed errors.
//
// Usage: test_exactness MODEL_DIR SUITE [SHIPPED_MODEL]
//   SUITE: partitions-tiny | partitions-sptmod25 | partitions-sptmod24 | partitions-tcn | partitions-keyed |
//          buffer-sizes | state | errors | start-state-bound | shipped
// A model keyed by a sidechain gets its key (program material of its own) with every call.
// Set NEURALCOMP_TEST_SEED to replay a failure (every failure message prints the seed).
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "neuralcomp/engine.hpp"
#include "neuralcomp/engine_c.h"
#include "test_archive.hpp"
#include "test_support.hpp"

using neuralcomp::ControlError;
using neuralcomp::Engine;
using neuralcomp::Model;
using neuralcomp::StateError;
using nctest::check;
using nctest::Planar;

namespace {

using ModelPtr = std::shared_ptr<const Model>;

// A control change at a buffer boundary: from sample `at` on, control `index` is `value`.
struct ControlChange {
  size_t at;
  int index;
  float value;  // a float so that set_control(value) and the float track normalise the same number
};

// A random value inside control `index`'s range that is exactly a float.
float random_control_value(const Model& model, int index, std::mt19937_64& rng) {
  const neuralcomp::ControlInfo& info = model.controls()[index];
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  float value = static_cast<float>(info.minimum + unit(rng) * (info.maximum - info.minimum));
  if (!(value >= info.minimum && value <= info.maximum)) value = static_cast<float>(info.default_value);
  return value;
}

// Random control changes at some of the boundaries of `sizes` (none when the model has no controls).
std::vector<ControlChange> random_changes(const Model& model, const std::vector<int>& sizes, double probability,
                                          std::mt19937_64& rng) {
  std::vector<ControlChange> changes;
  if (model.num_controls() == 0) return changes;
  std::bernoulli_distribution change(probability);
  size_t at = 0;
  for (int size : sizes) {
    if (change(rng)) {
      const int count = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < count; ++k) {
        const int index = static_cast<int>(rng() % model.num_controls());
        changes.push_back({at, index, random_control_value(model, index, rng)});
      }
    }
    at += size;
  }
  return changes;
}

// The per-sample control track (user units) that the changes describe, starting from the defaults.
std::vector<std::vector<float>> control_track(const Model& model, const std::vector<ControlChange>& changes,
                                              size_t frames) {
  std::vector<std::vector<float>> track(model.num_controls());
  for (int k = 0; k < model.num_controls(); ++k) {
    track[k].assign(frames, static_cast<float>(model.controls()[k].default_value));
  }
  for (const ControlChange& change : changes) {
    std::fill(track[change.index].begin() + change.at, track[change.index].end(), change.value);
  }
  return track;
}

std::vector<const float*> track_pointers(const std::vector<std::vector<float>>& track, size_t offset) {
  std::vector<const float*> pointers;
  for (const auto& row : track) pointers.push_back(row.data() + offset);
  if (pointers.empty()) pointers.push_back(nullptr);  // a model without controls: any pointer array
  return pointers;
}

// The model of `path` with its start state shortened to two frames of silence (its engine index
// edited in place, checksums recomputed): streaming exactness does not depend on the start state,
// and a fresh SPTMod24 engine then costs almost nothing instead of a second of audio.
ModelPtr load_short(const std::string& path) {
  const nctest::Bytes shortened = nctest::with_start_state_in_place(nctest::read_bytes(path), 2 * 64);
  const ModelPtr model = Model::load_memory(shortened.data(), shortened.size(), path + " (start state shortened)");
  check(model->start_state_samples() == 2 * 64 && (model->pool_size() == 64 || model->is_tcn()),
        path + ": the start state was not shortened");
  return model;
}

std::unique_ptr<Engine> make_engine(const ModelPtr& model, int channels, bool linked, int max_block_size = 4096) {
  auto engine = std::make_unique<Engine>(model, channels, max_block_size);
  if (linked) engine->set_linked(true);
  return engine;
}

// The key rows of a keyed model (`key` planar, pointed at the current offset), nullptr for no key.
const float* const* key_rows(const Planar* key) {
  return key != nullptr && key->channels() > 0 ? key->in.data() : nullptr;
}
int key_count(const Planar* key) { return key != nullptr ? key->channels() : 0; }

// One call over the whole input with the controls as a track, from a freshly built engine.
Planar reference_output(const ModelPtr& model, bool linked, const Planar& input,
                        const std::vector<std::vector<float>>& track, const Planar* key = nullptr) {
  auto engine = make_engine(model, input.channels(), linked);
  Planar output(input.channels(), input.frames());
  const auto pointers = track_pointers(track, 0);
  check(engine->process_with_control_track(input.in.data(), output.out.data(), input.channels(),
                                           static_cast<int>(input.frames()), pointers.data(), key_rows(key),
                                           key_count(key)),
        std::string("process_with_control_track refused a valid call: ") + engine->refusal());
  return output;
}

enum class Feed { set_control, track_slices };

// The stream fed buffer by buffer from `engine`'s current state; changes applied at the boundaries.
Planar streamed_output(Engine& engine, const Planar& input, const std::vector<int>& sizes,
                       const std::vector<ControlChange>& changes, Feed feed,
                       const std::vector<std::vector<float>>& track, const Planar* key = nullptr) {
  Planar output(input.channels(), input.frames());
  Planar in = input;  // pointer arrays of its own
  Planar key_in = key != nullptr ? *key : Planar(0, 0);
  const Planar* k = key != nullptr ? &key_in : nullptr;
  size_t at = 0, next_change = 0;
  for (int size : sizes) {
    in.point(at);
    key_in.point(at);
    output.point(at);
    if (feed == Feed::set_control) {
      for (; next_change < changes.size() && changes[next_change].at == at; ++next_change) {
        engine.set_control(changes[next_change].index, changes[next_change].value);
      }
      check(engine.process(in.in.data(), output.out.data(), input.channels(), size, key_rows(k), key_count(k)),
            std::string("process refused a valid call: ") + engine.refusal());
    } else {
      const auto pointers = track_pointers(track, at);
      check(engine.process_with_control_track(in.in.data(), output.out.data(), input.channels(), size, pointers.data(),
                                              key_rows(k), key_count(k)),
            std::string("process_with_control_track refused a valid call: ") + engine.refusal());
    }
    at += size;
  }
  output.point(0);
  return output;
}

// A fresh stream on an existing engine: its start state (snapshot) and the default controls.
void restart(Engine& engine, const std::vector<neuralcomp::StateTensor>& start) {
  for (int k = 0; k < engine.model().num_controls(); ++k) {
    engine.set_control(k, engine.model().controls()[k].default_value);
  }
  engine.set_state(start);
}

std::string setup_name(const std::string& model, int channels, bool linked) {
  return model + (channels == 1 ? " mono" : linked ? " stereo linked" : " stereo unlinked");
}

// Streamed == one call for many partitions of one model and channel setup (fresh engines each).
// `thorough`: all partitions and two internal block sizes (tiny); else the random, P-1/P/P+1 and
// single-sample partitions and one internal block size (the heavier presets, to keep ctest short).
void check_partitions(const ModelPtr& model, const std::string& name, int channels, bool linked, size_t frames,
                      uint64_t seed, bool thorough = true) {
  std::mt19937_64 rng(seed);
  const int P = model->pool_size();
  const Planar input = nctest::program_material(channels, frames, rng());
  const int key_channels = channels * model->sidechain_channels();
  const Planar key_material = nctest::program_material(key_channels, frames, key_channels ? rng() : 0);
  const Planar* key = key_channels ? &key_material : nullptr;
  std::vector<std::pair<std::string, std::vector<int>>> partitions{
      {"random 1..8192", nctest::random_sizes(rng, frames, 8192)},
      {"primes", nctest::repeat_sizes({1, 2, 3, 5, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191}, frames)},
  };
  if (P > 1) {  // around the frame (a TCN's frame is one sample: the single-sample partition covers it)
    partitions.emplace_back("P-1, P, P+1", nctest::repeat_sizes({P - 1, P, P + 1}, frames));
    partitions.emplace_back("P+1, P-1", nctest::repeat_sizes({P + 1, P - 1}, frames));
  }
  // many 1-sample buffers (three frames and a bit), then the rest in one call
  std::vector<int> ones(P > 1 ? 3 * P + 5 : 300, 1);
  ones.push_back(static_cast<int>(frames - ones.size()));
  partitions.emplace_back("3P+5 single samples, then the rest", ones);
  if (!thorough) partitions.erase(partitions.begin() + 1);  // primes
  if (!thorough && P > 1) partitions.erase(partitions.begin() + 2);  // P+1, P-1

  const std::string context = setup_name(name, channels, linked) + ", seed " + std::to_string(seed);
  // without control changes one call is the reference of every partition
  const auto constant = control_track(*model, {}, frames);
  const Planar constant_reference = reference_output(model, linked, input, constant, key);
  for (const auto& [label, sizes] : partitions) {
    const auto changes = random_changes(*model, sizes, 0.3, rng);
    const auto track = control_track(*model, changes, frames);
    const Planar reference =
        changes.empty() ? constant_reference : reference_output(model, linked, input, track, key);
    auto engine = make_engine(model, channels, linked);
    const Planar streamed = streamed_output(*engine, input, sizes, changes, Feed::set_control, track, key);
    const std::string difference = nctest::first_difference(reference, streamed);
    check(difference.empty(), context + ": buffers " + label + " [" + nctest::describe_sizes(sizes) + "] with " +
                                  std::to_string(changes.size()) +
                                  " set_control calls at boundaries differ from one call with a control track: " +
                                  difference);
    if (label == "random 1..8192" && !changes.empty()) {  // the track itself cut into the same buffers
      auto sliced_engine = make_engine(model, channels, linked);
      const Planar sliced = streamed_output(*sliced_engine, input, sizes, changes, Feed::track_slices, track, key);
      const std::string d = nctest::first_difference(reference, sliced);
      check(d.empty(), context + ": control track cut into buffers [" + nctest::describe_sizes(sizes) +
                           "] differs from one call: " + d);
    }
  }
  // a small max_block_size (calls split internally) changes nothing
  for (int max_block : {37, P + 1}) {
    if (!thorough && max_block != 37) continue;
    auto small = make_engine(model, channels, linked, max_block);
    const Planar one_call =
        streamed_output(*small, input, {static_cast<int>(frames)}, {}, Feed::set_control, constant, key);
    const std::string d = nctest::first_difference(constant_reference, one_call);
    check(d.empty(), context + ": one process() call of " + std::to_string(frames) + " frames with max_block_size " +
                         std::to_string(max_block) + " differs from the reference: " + d);
  }
}

// The model file as exported (its real start state): buffers with set_control equal one track call.
void check_real_start_state(const std::string& path, const std::string& name, size_t frames, uint64_t seed) {
  const ModelPtr model = Model::load_file(path);
  std::mt19937_64 rng(seed);
  const Planar input = nctest::program_material(1, frames, rng());
  const auto sizes = nctest::random_sizes(rng, frames, 700);
  const auto changes = random_changes(*model, sizes, 0.3, rng);
  const auto track = control_track(*model, changes, frames);
  auto engine = make_engine(model, 1, false);
  const auto start = engine->get_state();
  Planar reference(1, frames);
  const auto pointers = track_pointers(track, 0);
  check(engine->process_with_control_track(input.in.data(), reference.out.data(), 1, static_cast<int>(frames),
                                           pointers.data()),
        "process_with_control_track refused a valid call");
  restart(*engine, start);
  const Planar streamed = streamed_output(*engine, input, sizes, changes, Feed::set_control, track);
  const std::string d = nctest::first_difference(reference, streamed);
  check(d.empty(), name + " (real start state, seed " + std::to_string(seed) + "): buffers [" +
                       nctest::describe_sizes(sizes) + "] differ from one call: " + d);
}

void partitions_suite(nctest::Runner& runner, const std::string& dir, const std::string& preset, size_t frames,
                      uint64_t seed, bool thorough, bool causal_only = false) {
  for (const char* mode : {"causal", "paper"}) {
    if (causal_only && std::string(mode) != "causal") continue;
    for (int controls : {0, 7}) {
      const std::string path = nctest::model_path(dir, preset, mode, controls);
      const std::string name = preset + " " + mode + " " + std::to_string(controls) + " controls";
      if (controls == 7) {
        runner.run("partitions, real start state: " + name + " mono",
                   [&] { check_real_start_state(path, name, thorough ? 4000 : 1500, seed++); });
      }
      for (auto [channels, linked] : {std::pair{1, false}, std::pair{2, false}, std::pair{2, true}}) {
        runner.run("partitions: " + setup_name(name, channels, linked), [&, channels = channels, linked = linked] {
          const ModelPtr model = load_short(path);
          check(model->num_controls() == controls, path + " has " + std::to_string(model->num_controls()) + " controls");
          check(model->mode() == mode, path + " is not in " + mode + " mode");
          check_partitions(model, name, channels, linked, frames, seed++, thorough);
        });
      }
    }
  }
}

// Models keyed by a sidechain (export_test_models.py's KEYED), every partition with its key.
void partitions_keyed_suite(nctest::Runner& runner, const std::string& dir, uint64_t seed) {
  for (auto [mode, controls, keys] : {std::tuple{"causal", 7, 1}, std::tuple{"paper", 2, 2}}) {
    const std::string path = nctest::model_path(dir, "tiny", mode, controls, keys);
    const std::string name = std::string("tiny ") + mode + " " + std::to_string(controls) + " controls keyed by " +
                             std::to_string(keys);
    for (auto [channels, linked] : {std::pair{1, false}, std::pair{2, false}, std::pair{2, true}}) {
      runner.run("partitions: " + setup_name(name, channels, linked), [&, channels = channels, linked = linked] {
        const ModelPtr model = load_short(path);
        check(model->sidechain_channels() == keys, path + " is not keyed by " + std::to_string(keys));
        check_partitions(model, name, channels, linked, 2 * 8192 + 1000, seed++, true);
      });
    }
  }
}

// Every buffer size 1..130, control changes every few buffers, on one model per mode.
void buffer_sizes_suite(nctest::Runner& runner, const std::string& dir, uint64_t seed) {
  for (auto [mode, channels, linked] : {std::tuple{"causal", 2, true}, std::tuple{"paper", 1, false}}) {
    const std::string path = nctest::model_path(dir, "tiny", mode, 7);
    runner.run(std::string("every buffer size 1..130: tiny ") + mode + " 7 controls " +
                   (channels == 1 ? "mono" : "stereo linked"),
               [&, mode = mode, channels = channels, linked = linked] {
                 const ModelPtr model = load_short(path);
                 std::mt19937_64 rng(seed);
                 const size_t frames = 1100;
                 for (int size = 1; size <= 130; ++size) {
                   const uint64_t case_seed = rng();
                   std::mt19937_64 case_rng(case_seed);
                   const Planar input = nctest::program_material(channels, frames, case_rng());
                   const auto sizes = nctest::repeat_sizes({size}, frames);
                   const auto changes = random_changes(*model, sizes, 0.25, case_rng);
                   const auto track = control_track(*model, changes, frames);
                   const Planar reference = reference_output(model, linked, input, track);
                   auto engine = make_engine(model, channels, linked);
                   const Planar streamed = streamed_output(*engine, input, sizes, changes, Feed::set_control, track);
                   const std::string d = nctest::first_difference(reference, streamed);
                   check(d.empty(), std::string("tiny ") + mode + ": buffers of " + std::to_string(size) +
                                        " with control changes differ from one call (seed " + std::to_string(seed) +
                                        ", case seed " + std::to_string(case_seed) + "): " + d);
                 }
               });
  }
}

// Snapshot mid-stream, continue on the same engine and on another one restored from the snapshot.
void state_suite(nctest::Runner& runner, const std::string& dir, uint64_t seed) {
  for (const char* mode : {"causal", "paper"}) {
    for (auto [channels, linked] : {std::pair{1, false}, std::pair{2, false}, std::pair{2, true}}) {
      const std::string name = std::string("tiny ") + mode + " 7 controls";
      runner.run("state round trip: " + setup_name(name, channels, linked), [&, channels = channels, linked = linked] {
        const ModelPtr model = load_short(nctest::model_path(dir, "tiny", mode, 7));
        std::mt19937_64 rng(seed);
        const int P = model->pool_size();
        // cut points at several phases: frame boundaries, mid-frame, just before the end of a frame
        for (size_t prefix : {static_cast<size_t>(0), static_cast<size_t>(1), static_cast<size_t>(P - 1),
                              static_cast<size_t>(P), static_cast<size_t>(5 * P + 17), static_cast<size_t>(777)}) {
          const size_t frames = prefix + 3000;
          const Planar input = nctest::program_material(channels, frames, rng());
          auto original = make_engine(model, channels, linked);
          original->set_control(0, 0.25);
          original->set_control(3, 0.875);
          Planar head(channels, prefix), head_out(channels, prefix);
          for (int c = 0; c < channels; ++c) std::copy_n(input.data[c].begin(), prefix, head.data[c].begin());
          head.point(0);
          head_out.point(0);
          check(original->process(head.in.data(), head_out.out.data(), channels, static_cast<int>(prefix)), "process");
          const auto snapshot = original->get_state();
          const std::vector<int> sizes = nctest::random_sizes(rng, 3000, 300);
          Planar tail(channels, 3000);
          for (int c = 0; c < channels; ++c) std::copy_n(input.data[c].begin() + prefix, 3000, tail.data[c].begin());
          tail.point(0);
          const Planar continued = streamed_output(*original, tail, sizes, {}, Feed::set_control, {});
          // a new engine (another stream first, so its state is not the start state) restored from it
          auto restored = make_engine(model, channels, linked);
          const Planar noise = nctest::program_material(channels, 999, rng());
          Planar sink(channels, 999);
          check(restored->process(noise.in.data(), sink.out.data(), channels, 999), "process");
          restored->set_control(0, 0.25);
          restored->set_control(3, 0.875);
          restored->set_state(snapshot);
          const Planar resumed = streamed_output(*restored, tail, sizes, {}, Feed::set_control, {});
          const std::string d = nctest::first_difference(continued, resumed);
          check(d.empty(), "after a snapshot at sample " + std::to_string(prefix) + " (seed " + std::to_string(seed) +
                               "), the restored stream differs from the original: " + d);
          // the snapshot of the restored engine equals the one it was given, tensor for tensor
          auto again = make_engine(model, channels, linked);
          again->set_state(snapshot);
          const auto round_trip = again->get_state();
          check(round_trip.size() == snapshot.size(), "get_state after set_state has another tensor count");
          for (size_t i = 0; i < snapshot.size(); ++i) {
            check(round_trip[i].name == snapshot[i].name && round_trip[i].shape == snapshot[i].shape &&
                      std::memcmp(round_trip[i].data.data(), snapshot[i].data.data(),
                                  sizeof(float) * snapshot[i].data.size()) == 0 &&
                      round_trip[i].data.size() == snapshot[i].data.size(),
                  "state tensor '" + snapshot[i].name + "' changes through set_state/get_state");
          }
        }
      });
    }
    runner.run(std::string("state refused across channel count and link: tiny ") + mode, [&] {
      const ModelPtr model = Model::load_file(nctest::model_path(dir, "tiny", mode, 7));
      auto mono = make_engine(model, 1, false);
      auto stereo = make_engine(model, 2, false);
      auto linked = make_engine(model, 2, true);
      auto three = make_engine(model, 3, false);
      const Planar input = nctest::program_material(2, 300, seed);
      Planar sink(2, 300);
      check(stereo->process(input.in.data(), sink.out.data(), 2, 300), "process");
      check(linked->process(input.in.data(), sink.out.data(), 2, 300), "process");
      struct Case {
        std::string what;
        Engine* from;
        Engine* into;
      };
      const std::vector<Case> cases{{"mono into stereo", mono.get(), stereo.get()},
                                    {"stereo into mono", stereo.get(), mono.get()},
                                    {"unlinked stereo into linked stereo", stereo.get(), linked.get()},
                                    {"linked stereo into unlinked stereo", linked.get(), stereo.get()},
                                    {"linked stereo into mono", linked.get(), mono.get()},
                                    {"stereo into 3 channels", stereo.get(), three.get()}};
      for (const Case& c : cases) {
        const auto snapshot = c.from->get_state();
        const auto before = c.into->get_state();
        bool refused = false;
        try {
          c.into->set_state(snapshot);
        } catch (const StateError&) {
          refused = true;
        }
        check(refused, std::string(mode) + ": set_state of a " + c.what + " snapshot did not throw StateError");
        const auto after = c.into->get_state();
        for (size_t i = 0; i < before.size(); ++i) {
          check(before[i].shape == after[i].shape && before[i].data == after[i].data,
                std::string(mode) + ": a refused " + c.what + " snapshot changed state '" + before[i].name + "'");
        }
      }
      // a snapshot of another model (other block count) and hand-broken snapshots
      const ModelPtr other = Model::load_file(nctest::model_path(dir, "sptmod25", mode, 7));
      Engine foreign(other, 1, 512);
      auto good = mono->get_state();
      std::vector<std::pair<std::string, std::vector<neuralcomp::StateTensor>>> broken{
          {"another model's snapshot", foreign.get_state()}, {"an empty snapshot", {}}};
      auto bad_phase = good;
      bad_phase[0].data[0] = static_cast<float>(model->pool_size());
      broken.emplace_back("phase = pool_size", bad_phase);
      auto fractional = good;
      fractional[0].data[0] = 0.5f;
      broken.emplace_back("phase = 0.5", fractional);
      auto nan_state = good;
      nan_state[3].data[0] = std::nanf("");
      broken.emplace_back("NaN in lstm_h", nan_state);
      auto short_tensor = good;
      short_tensor[1].data.pop_back();
      broken.emplace_back("conv_cache one value short", short_tensor);
      auto renamed = good;
      renamed[2].name = "block0.something_else";
      broken.emplace_back("a renamed tensor", renamed);
      for (const auto& [what, snapshot] : broken) {
        bool refused = false;
        try {
          mono->set_state(snapshot);
        } catch (const StateError&) {
          refused = true;
        }
        check(refused, std::string(mode) + ": set_state of " + what + " did not throw StateError");
      }
    });
  }
}

// Bad calls: refused (false / -1) without touching the stream, or a typed error; NaN/Inf input
// mutes the call and restarts from the start state.
void errors_suite(nctest::Runner& runner, const std::string& dir, uint64_t seed) {
  for (const char* mode : {"causal", "paper"}) {
    runner.run(std::string("non-finite input mutes the call and restores the start state: tiny ") + mode, [&] {
      const ModelPtr model = Model::load_file(nctest::model_path(dir, "tiny", mode, 7));
      for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
        auto engine = make_engine(model, 2, true);
        const Planar input = nctest::program_material(2, 2000, seed);
        Planar output(2, 2000);
        output.point(0);
        check(engine->process(input.in.data(), output.out.data(), 2, 1000), "process");
        Planar poisoned = nctest::program_material(2, 77, seed + 1);
        poisoned.data[1][40] = bad;
        Planar muted(2, 77);
        for (auto& channel : muted.data) std::fill(channel.begin(), channel.end(), 1.0f);
        check(engine->process(poisoned.in.data(), muted.out.data(), 2, 77), "process of a NaN buffer returned false");
        for (const auto& channel : muted.data)
          for (float v : channel) check(v == 0.0f, std::string(mode) + ": a non-finite buffer was not muted");
        check(engine->nonfinite_buffers() == 1, "the non-finite buffer was not counted");
        // the stream goes on as a fresh one would
        Planar after(2, 1000), fresh_out(2, 1000);
        Planar rest(2, 1000);
        for (int c = 0; c < 2; ++c) std::copy_n(input.data[c].begin() + 1000, 1000, rest.data[c].begin());
        rest.point(0);
        check(engine->process(rest.in.data(), after.out.data(), 2, 1000), "process");
        auto fresh = make_engine(model, 2, true);
        check(fresh->process(rest.in.data(), fresh_out.out.data(), 2, 1000), "process");
        const std::string d = nctest::first_difference(after, fresh_out);
        check(d.empty(), std::string(mode) + ": after a non-finite buffer the stream differs from a fresh one: " + d);
        // restart() does the same without a NaN buffer, and counts nothing
        engine->restart();
        Planar restarted(2, 1000);
        check(engine->process(rest.in.data(), restarted.out.data(), 2, 1000), "process");
        const std::string r = nctest::first_difference(restarted, fresh_out);
        check(r.empty(), std::string(mode) + ": after restart() the stream differs from a fresh one: " + r);
        check(engine->nonfinite_buffers() == 1, "restart() counted a non-finite buffer");
      }
    });
  }
  runner.run("a key that does not fit the model is refused before any work, and says why", [&] {
    const ModelPtr keyed = Model::load_file(nctest::model_path(dir, "tiny", "paper", 2, 2));
    const ModelPtr unkeyed = Model::load_file(nctest::model_path(dir, "tiny", "causal", 7));
    check(keyed->sidechain_channels() == 2 && unkeyed->sidechain_channels() == 0, "sidechain_channels()");
    Engine engine(keyed, 2, 256);
    const Planar input = nctest::program_material(2, 300, seed);
    const Planar key = nctest::program_material(4, 300, seed + 1);
    Planar output(2, 300);
    const auto before = engine.get_state();
    const auto refused = [&](Engine& e, const float* const* k, int rows, const std::string& reason) {
      for (auto& channel : output.data) std::fill(channel.begin(), channel.end(), 7.0f);
      check(!e.process(input.in.data(), output.out.data(), 2, 300, k, rows), "a bad key was accepted: " + reason);
      check(std::string(e.refusal()).find(reason) != std::string::npos,
            "refusal '" + std::string(e.refusal()) + "' does not say '" + reason + "'");
      for (const auto& channel : output.data)
        for (float v : channel) check(v == 7.0f, "a refused call wrote output");
    };
    refused(engine, nullptr, 0, "keyed by a sidechain");
    refused(engine, key.in.data(), 2, "wrong number of rows");
    std::vector<const float*> holes(key.in.begin(), key.in.end());
    holes[3] = nullptr;
    refused(engine, holes.data(), 4, "null key row");
    check(engine.get_state().size() == before.size(), "state");
    for (size_t i = 0; i < before.size(); ++i)
      check(engine.get_state()[i].data == before[i].data, "a refused call moved the state");
    check(engine.process(input.in.data(), output.out.data(), 2, 300, key.in.data(), 4) && *engine.refusal() == '\0',
          "a valid keyed call was refused");
    Engine plain(unkeyed, 2, 256);
    refused(plain, key.in.data(), 2, "no sidechain input");
  });
  runner.run("bad process calls are refused and change nothing", [&] {
    const ModelPtr model = Model::load_file(nctest::model_path(dir, "tiny", "causal", 7));
    Engine engine(model, 2, 256);
    Engine twin(model, 2, 256);
    const Planar input = nctest::program_material(2, 600, seed);
    Planar out(2, 600), twin_out(2, 600);
    const float* null_in[2] = {input.in[0], nullptr};
    float* null_out[2] = {out.out[0], nullptr};
    check(!engine.process(input.in.data(), out.out.data(), 1, 100), "process with 1 channel on a stereo engine");
    check(!engine.process(input.in.data(), out.out.data(), 3, 100), "process with 3 channels on a stereo engine");
    check(!engine.process(nullptr, out.out.data(), 2, 100), "process with input == nullptr");
    check(!engine.process(input.in.data(), nullptr, 2, 100), "process with output == nullptr");
    check(!engine.process(null_in, out.out.data(), 2, 100), "process with a null channel pointer");
    check(!engine.process(input.in.data(), null_out, 2, 100), "process with a null output channel");
    check(!engine.process(input.in.data(), out.out.data(), 2, -1), "process with -1 frames");
    check(engine.process(input.in.data(), out.out.data(), 2, 0), "process with 0 frames must succeed");
    std::vector<const float*> null_track(7, nullptr);
    check(!engine.process_with_control_track(input.in.data(), out.out.data(), 2, 100, null_track.data()),
          "process_with_control_track with null control rows");
    check(engine.process(input.in.data(), out.out.data(), 2, 600), "process");
    check(twin.process(input.in.data(), twin_out.out.data(), 2, 600), "process");
    const std::string d = nctest::first_difference(out, twin_out);
    check(d.empty(), "refused calls changed the stream: " + d);
  });
  runner.run("typed errors: controls, channel counts, block sizes, files", [&] {
    const ModelPtr model = Model::load_file(nctest::model_path(dir, "tiny", "causal", 7));
    Engine engine(model, 1, 64);
    auto throws_control = [&](const std::function<void()>& call, const std::string& what) {
      bool thrown = false;
      try {
        call();
      } catch (const ControlError&) {
        thrown = true;
      }
      check(thrown, what + " did not throw ControlError");
    };
    throws_control([&] { engine.set_control(7, 0.5); }, "set_control(7) on a 7-control model");
    throws_control([&] { engine.set_control(-1, 0.5); }, "set_control(-1)");
    throws_control([&] { engine.set_control(0, 1.0001); }, "set_control above the maximum");
    throws_control([&] { engine.set_control(0, -0.0001); }, "set_control below the minimum");
    throws_control([&] { engine.set_control(0, std::nan("")); }, "set_control(NaN)");
    throws_control([&] { engine.set_control("no such control", 0.5); }, "set_control of an unknown name");
    throws_control([&] { engine.get_control(9); }, "get_control(9)");
    engine.set_control("c2", 0.125);
    check(engine.get_control(2) == 0.125 && engine.get_control("c2") == 0.125, "set_control by name");
    for (auto [channels, block] : {std::pair{0, 64}, std::pair{-1, 64}, std::pair{1, 0}, std::pair{1, -5}}) {
      bool thrown = false;
      try {
        Engine bad(model, channels, block);
      } catch (const neuralcomp::AudioInputError&) {
        thrown = true;
      }
      check(thrown, "Engine(" + std::to_string(channels) + " channels, max block " + std::to_string(block) +
                        ") did not throw AudioInputError");
    }
    for (const std::string& path : {dir + "/no_such_model.ts", dir}) {
      bool thrown = false;
      try {
        Model::load_file(path);
      } catch (const neuralcomp::ModelFileError& e) {
        thrown = std::string(e.what()).find(path) != std::string::npos;
      }
      check(thrown, "load_file(" + path + ") did not throw a ModelFileError naming the file");
    }
  });
  runner.run("C API: errors as -1 / NULL with a message, process as the C++ engine", [&] {
    const std::string path = nctest::model_path(dir, "tiny", "paper", 7);
    char error[256] = "";
    check(nc_model_load_file((dir + "/missing.ts").c_str(), error, sizeof error) == nullptr && error[0] != '\0',
          "nc_model_load_file of a missing file");
    const unsigned char junk[64] = {};
    error[0] = '\0';
    check(nc_model_load_memory(junk, sizeof junk, error, sizeof error) == nullptr && error[0] != '\0',
          "nc_model_load_memory of zeros");
    nc_model* model = nc_model_load_file(path.c_str(), error, sizeof error);
    check(model != nullptr, std::string("nc_model_load_file: ") + error);
    check(nc_model_num_controls(model) == 7 && nc_model_pool_size(model) == 64 &&
              nc_model_latency_samples(model) == 63,
          "C API model queries");
    nc_control_info info;
    check(nc_model_control_info(model, 7, &info) == -1 && nc_model_control_info(model, 6, &info) == 0,
          "nc_model_control_info bounds");
    check(nc_engine_create(model, 0, 64, error, sizeof error) == nullptr, "nc_engine_create with 0 channels");
    nc_engine* engine = nc_engine_create(model, 2, 100, error, sizeof error);
    nc_model_free(model);  // the engine keeps its own reference
    check(engine != nullptr, std::string("nc_engine_create: ") + error);
    check(nc_engine_set_control(engine, 0, 2.0) == -1 && nc_engine_set_control(engine, 7, 0.5) == -1,
          "nc_engine_set_control out of range");
    check(nc_engine_set_control(engine, 1, 0.75) == 0 && nc_engine_get_control(engine, 1) == 0.75,
          "nc_engine_set_control");
    check(nc_engine_set_linked(engine, 1) == 0, "nc_engine_set_linked");
    const Planar input = nctest::program_material(2, 1000, seed);
    Planar c_out(2, 1000), cpp_out(2, 1000);
    check(nc_engine_process(engine, input.in.data(), c_out.out.data(), 1, 100) == -1, "nc_engine_process 1 channel");
    check(nc_engine_process(engine, input.in.data(), c_out.out.data(), 2, 1000) == 0, "nc_engine_process");
    const ModelPtr cpp_model = Model::load_file(path);
    auto cpp = std::make_unique<Engine>(cpp_model, 2, 100);
    cpp->set_control(1, 0.75);
    cpp->set_linked(true);  // the start state is computed at the controls in force, as in the C calls
    check(cpp->process(input.in.data(), cpp_out.out.data(), 2, 1000), "process");
    const std::string d = nctest::first_difference(c_out, cpp_out);
    check(d.empty(), "nc_engine_process differs from Engine::process: " + d);
    nc_engine_free(engine);
  });
  runner.run("process() after a control-track call uses the set_control values", [&] {
    // A control track is per call: the next plain process() goes back to the controls in force
    // (set_control), as a fresh stream with the same history would.
    const ModelPtr model = Model::load_file(nctest::model_path(dir, "tiny", "causal", 7));
    const size_t frames = 1024;
    const Planar input = nctest::program_material(1, 2 * frames, seed);
    std::vector<ControlChange> none;
    auto track_values = control_track(*model, none, frames);
    for (auto& row : track_values) std::fill(row.begin(), row.end(), 0.125f);  // all controls 0.125
    // engine A: first half with the track, second half with process() at the defaults
    auto a = make_engine(model, 1, false);
    Planar a_out(1, 2 * frames);
    auto pointers = track_pointers(track_values, 0);
    check(a->process_with_control_track(input.in.data(), a_out.out.data(), 1, frames, pointers.data()), "track");
    Planar second(1, frames);
    std::copy_n(input.data[0].begin() + frames, frames, second.data[0].begin());
    second.point(0);
    Planar a_second(1, frames);
    check(a->process(second.in.data(), a_second.out.data(), 1, frames), "process");
    // engine B: the same, the second half as a track holding the defaults
    auto b = make_engine(model, 1, false);
    Planar b_out(1, 2 * frames);
    check(b->process_with_control_track(input.in.data(), b_out.out.data(), 1, frames, pointers.data()), "track");
    const auto defaults = control_track(*model, none, frames);
    const auto default_pointers = track_pointers(defaults, 0);
    Planar b_second(1, frames);
    check(b->process_with_control_track(second.in.data(), b_second.out.data(), 1, frames, default_pointers.data()),
          "track");
    const std::string d = nctest::first_difference(a_second, b_second);
    check(d.empty(), "process() after a control-track call keeps the track's last controls instead of the "
                     "set_control values (get_control says " + std::to_string(a->get_control(0)) + "): " + d);
  });
}

// A crafted file must not hang a host: a start state far beyond the exported one second (here
// 2^26 samples, 25 minutes of silence to run at every reset) is refused, or at least prepared quickly.
void start_state_bound_suite(nctest::Runner& runner, const std::string& dir) {
  runner.run("a crafted 2^26-sample start state is refused or prepared within 5 s", [&] {
    const std::string path = nctest::model_path(dir, "tiny", "causal", 0);
    const nctest::Bytes crafted = nctest::with_edited_index(nctest::read_bytes(path), [](nlohmann::json& index) {
      index["start_state_samples"] = 1 << 26;
    });
    const auto start = std::chrono::steady_clock::now();
    try {
      const ModelPtr model = Model::load_memory(crafted.data(), crafted.size(), "crafted start state");
      Engine engine(model, 1, 4096);
    } catch (const neuralcomp::ModelFileError&) {
      return;  // refused: fine
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    check(seconds < 5.0, "loading and preparing took " + std::to_string(seconds) + " s");
  });
}

// The shipped trained model: loads, and streams bitwise like one call (skipped before its re-export).
void shipped_suite(nctest::Runner& runner, const std::string& path, uint64_t seed) {
  const std::vector<unsigned char> bytes = nctest::read_bytes(path);
  const std::string entry = "neuralcomp_engine.bin";
  if (std::search(bytes.begin(), bytes.end(), entry.begin(), entry.end()) == bytes.end()) {
    runner.skip("shipped model " + path, "it has no engine entry yet (exported before the native engine)");
    return;
  }
  runner.run("partitions, real start state: shipped model " + path,
             [&] { check_real_start_state(path, "shipped model", 6000, seed); });
  runner.run("partitions: shipped model " + path, [&] {
    const ModelPtr model = load_short(path);
    for (auto [channels, linked] : {std::pair{1, false}, std::pair{2, false}, std::pair{2, true}}) {
      check_partitions(model, "shipped model", channels, linked, 12000, seed + channels + linked);
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR SUITE [SHIPPED_MODEL]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1], suite = argv[2];
  const uint64_t seed = nctest::test_seed(20261129);
  std::fprintf(stderr, "seed %llu (replay with NEURALCOMP_TEST_SEED=%llu)\n", static_cast<unsigned long long>(seed),
               static_cast<unsigned long long>(seed));
  nctest::Runner runner;
  if (suite == "partitions-tiny") {
    partitions_suite(runner, dir, "tiny", 2 * 8192 + 1000, seed, true);
  } else if (suite == "partitions-tiny-max") {  // max frame pooling
    partitions_suite(runner, dir, "tiny_max", 2 * 8192 + 1000, seed, true);
  } else if (suite == "partitions-sptmod25") {
    partitions_suite(runner, dir, "sptmod25", 6000, seed, false);
  } else if (suite == "partitions-sptmod24") {
    partitions_suite(runner, dir, "sptmod24", 2500, seed, false);
  } else if (suite == "partitions-tcn") {
    partitions_suite(runner, dir, "tcn", 6000, seed, false, true);
  } else if (suite == "partitions-keyed") {
    partitions_keyed_suite(runner, dir, seed);
  } else if (suite == "buffer-sizes") {
    buffer_sizes_suite(runner, dir, seed);
  } else if (suite == "state") {
    state_suite(runner, dir, seed);
  } else if (suite == "start-state-bound") {
    start_state_bound_suite(runner, dir);
  } else if (suite == "errors") {
    errors_suite(runner, dir, seed);
  } else if (suite == "shipped" && argc > 3) {
    shipped_suite(runner, argv[3], seed);
  } else {
    std::fprintf(stderr, "unknown suite '%s'\n", suite.c_str());
    return 2;
  }
  return runner.exit_code();
}
