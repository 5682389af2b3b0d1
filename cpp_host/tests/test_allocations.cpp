// The real-time entry points allocate and free nothing and take no mutex. This program replaces the
// global operator new/delete (every variant), malloc/calloc/realloc/free/aligned_alloc/
// posix_memalign/memalign (forwarded to the C library through dlsym(RTLD_NEXT)) and
// pthread_mutex_lock, and counts the calls the audio thread makes while its counting flag is on,
// i.e. inside Engine::process(), Engine::process_with_control_track(), nc_engine_process() (or
// nc_engine_process_keyed() for a model keyed by a sidechain, which gets a key every call) and
// Engine::restart() / nc_engine_restart().
//
// Usage: test_allocations MODEL_DIR
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "neuralcomp/engine.hpp"
#include "neuralcomp/engine_c.h"
#include "test_support.hpp"

// ---- the counting allocator --------------------------------------------------------------------------

namespace {

enum Kind { kMalloc, kCalloc, kRealloc, kFree, kAlignedAlloc, kNew, kNewArray, kNewAligned, kDelete, kDeleteArray,
            kDeleteAligned, kMutexLock, kKinds };
const char* const kKindNames[kKinds] = {"malloc",          "calloc",      "realloc",       "free",
                                        "aligned_alloc",   "operator new", "operator new[]", "aligned operator new",
                                        "operator delete", "operator delete[]", "aligned operator delete",
                                        "pthread_mutex_lock"};

// Counting is per thread: only the thread that switched it on (the audio thread) is counted.
__attribute__((tls_model("initial-exec"))) thread_local bool t_counting = false;
std::atomic<uint64_t> g_counts[kKinds];

inline void count(Kind kind) {
  if (t_counting) g_counts[kind].fetch_add(1, std::memory_order_relaxed);
}

using MallocFn = void* (*)(size_t);
using CallocFn = void* (*)(size_t, size_t);
using ReallocFn = void* (*)(void*, size_t);
using FreeFn = void (*)(void*);
using AlignedAllocFn = void* (*)(size_t, size_t);
using PosixMemalignFn = int (*)(void**, size_t, size_t);
using MemalignFn = void* (*)(size_t, size_t);
using MutexLockFn = int (*)(pthread_mutex_t*);

MallocFn real_malloc = nullptr;
CallocFn real_calloc = nullptr;
ReallocFn real_realloc = nullptr;
FreeFn real_free = nullptr;
AlignedAllocFn real_aligned_alloc = nullptr;
PosixMemalignFn real_posix_memalign = nullptr;
MemalignFn real_memalign = nullptr;
MutexLockFn real_mutex_lock = nullptr;

// dlsym may itself call calloc/malloc before the real functions are known: serve those from here.
alignas(64) unsigned char g_bootstrap[8192];
size_t g_bootstrap_used = 0;
bool g_resolving = false;

bool from_bootstrap(const void* p) {
  return p >= static_cast<const void*>(g_bootstrap) && p < static_cast<const void*>(g_bootstrap + sizeof g_bootstrap);
}

void* bootstrap_alloc(size_t size) {
  const size_t at = (g_bootstrap_used + 15) & ~static_cast<size_t>(15);
  if (at + size > sizeof g_bootstrap) std::abort();
  g_bootstrap_used = at + size;
  return g_bootstrap + at;
}

void resolve() {
  if (real_malloc || g_resolving) return;
  g_resolving = true;
  real_calloc = reinterpret_cast<CallocFn>(dlsym(RTLD_NEXT, "calloc"));
  real_realloc = reinterpret_cast<ReallocFn>(dlsym(RTLD_NEXT, "realloc"));
  real_free = reinterpret_cast<FreeFn>(dlsym(RTLD_NEXT, "free"));
  real_aligned_alloc = reinterpret_cast<AlignedAllocFn>(dlsym(RTLD_NEXT, "aligned_alloc"));
  real_posix_memalign = reinterpret_cast<PosixMemalignFn>(dlsym(RTLD_NEXT, "posix_memalign"));
  real_memalign = reinterpret_cast<MemalignFn>(dlsym(RTLD_NEXT, "memalign"));
  real_mutex_lock = reinterpret_cast<MutexLockFn>(dlsym(RTLD_NEXT, "pthread_mutex_lock"));
  real_malloc = reinterpret_cast<MallocFn>(dlsym(RTLD_NEXT, "malloc"));
  g_resolving = false;
  if (!real_malloc || !real_calloc || !real_realloc || !real_free || !real_aligned_alloc || !real_posix_memalign ||
      !real_memalign || !real_mutex_lock) {
    std::abort();
  }
}

void* aligned_new(size_t size, std::align_val_t alignment) {
  resolve();
  size_t align = static_cast<size_t>(alignment);
  if (align < sizeof(void*)) align = sizeof(void*);
  void* p = nullptr;
  if (real_posix_memalign(&p, align, size ? size : 1) != 0) p = nullptr;
  return p;
}

}  // namespace

extern "C" {

void* malloc(size_t size) {
  if (!real_malloc) {
    if (g_resolving) return bootstrap_alloc(size);
    resolve();
  }
  count(kMalloc);
  return real_malloc(size);
}

void* calloc(size_t n, size_t size) {
  if (!real_calloc) {
    if (g_resolving) return bootstrap_alloc(n * size);  // static storage is zeroed
    resolve();
  }
  count(kCalloc);
  return real_calloc(n, size);
}

void* realloc(void* p, size_t size) {
  resolve();
  count(kRealloc);
  if (from_bootstrap(p)) {
    void* q = real_malloc(size);
    if (q) std::memcpy(q, p, size);  // bootstrap blocks are small and never reallocated in practice
    return q;
  }
  return real_realloc(p, size);
}

void free(void* p) {
  if (from_bootstrap(p)) return;
  resolve();
  count(kFree);
  real_free(p);
}

void* aligned_alloc(size_t alignment, size_t size) {
  resolve();
  count(kAlignedAlloc);
  return real_aligned_alloc(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) {
  resolve();
  count(kAlignedAlloc);
  return real_posix_memalign(out, alignment, size);
}

void* memalign(size_t alignment, size_t size) {
  resolve();
  count(kAlignedAlloc);
  return real_memalign(alignment, size);
}

int pthread_mutex_lock(pthread_mutex_t* mutex) {
  resolve();
  count(kMutexLock);
  return real_mutex_lock(mutex);
}

}  // extern "C"

// operator new/delete: counted under their own names, then served by the C library directly.
void* operator new(size_t size) {
  count(kNew);
  resolve();
  void* p = real_malloc(size ? size : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t size) {
  count(kNewArray);
  resolve();
  void* p = real_malloc(size ? size : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  count(kNew);
  resolve();
  return real_malloc(size ? size : 1);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  count(kNewArray);
  resolve();
  return real_malloc(size ? size : 1);
}
void* operator new(size_t size, std::align_val_t alignment) {
  count(kNewAligned);
  void* p = aligned_new(size, alignment);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t size, std::align_val_t alignment) {
  count(kNewAligned);
  void* p = aligned_new(size, alignment);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new(size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  count(kNewAligned);
  return aligned_new(size, alignment);
}
void* operator new[](size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  count(kNewAligned);
  return aligned_new(size, alignment);
}

void operator delete(void* p) noexcept {
  count(kDelete);
  resolve();
  real_free(p);
}
void operator delete[](void* p) noexcept {
  count(kDeleteArray);
  resolve();
  real_free(p);
}
void operator delete(void* p, size_t) noexcept {
  count(kDelete);
  resolve();
  real_free(p);
}
void operator delete[](void* p, size_t) noexcept {
  count(kDeleteArray);
  resolve();
  real_free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  count(kDelete);
  resolve();
  real_free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  count(kDeleteArray);
  resolve();
  real_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  count(kDeleteAligned);
  resolve();
  real_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  count(kDeleteAligned);
  resolve();
  real_free(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  count(kDeleteAligned);
  resolve();
  real_free(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  count(kDeleteAligned);
  resolve();
  real_free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  count(kDeleteAligned);
  resolve();
  real_free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  count(kDeleteAligned);
  resolve();
  real_free(p);
}

// ---- the tests -----------------------------------------------------------------------------------------

namespace {

using neuralcomp::Engine;
using neuralcomp::Model;
using nctest::check;
using nctest::Planar;

struct Counts {
  uint64_t value[kKinds] = {};
  uint64_t total() const {
    uint64_t sum = 0;
    for (uint64_t v : value) sum += v;
    return sum;
  }
  std::string describe() const {
    std::string text;
    for (int k = 0; k < kKinds; ++k) {
      if (value[k]) text += (text.empty() ? "" : ", ") + std::to_string(value[k]) + " " + kKindNames[k];
    }
    return text.empty() ? "none" : text;
  }
};

Counts snapshot_counts() {
  Counts counts;
  for (int k = 0; k < kKinds; ++k) counts.value[k] = g_counts[k].load();
  return counts;
}

Counts counted_since(const Counts& before) {
  Counts now = snapshot_counts();
  for (int k = 0; k < kKinds; ++k) now.value[k] -= before.value[k];
  return now;
}

// Runs `body` with this thread's counting on; returns what it allocated, freed or locked.
template <typename Body>
Counts counted(Body&& body) {
  const Counts before = snapshot_counts();
  t_counting = true;
  body();
  t_counting = false;
  return counted_since(before);
}

void* volatile g_sink;  // keeps the deliberate allocations below from being optimised away

// The counter sees every replaced function (so a zero below cannot come from a dead counter).
void check_counter_is_live() {
  struct Probe {
    const char* what;
    Kind kind;
    void (*call)();
  };
  const Probe probes[] = {
      {"malloc", kMalloc, [] { g_sink = std::malloc(24); }},
      {"free", kFree, [] { std::free(g_sink); }},
      {"calloc", kCalloc, [] { g_sink = std::calloc(3, 8); }},
      {"realloc", kRealloc, [] { g_sink = std::realloc(g_sink, 4096); }},
      {"free", kFree, [] { std::free(g_sink); }},
      {"aligned_alloc", kAlignedAlloc, [] { g_sink = aligned_alloc(64, 128); }},
      {"free", kFree, [] { std::free(g_sink); }},
      {"operator new", kNew, [] { g_sink = ::operator new(40); }},
      {"operator delete", kDelete, [] { ::operator delete(g_sink); }},
      {"operator new[]", kNewArray, [] { g_sink = ::operator new[](40); }},
      {"operator delete[]", kDeleteArray, [] { ::operator delete[](g_sink); }},
      {"aligned operator new", kNewAligned, [] { g_sink = ::operator new(40, std::align_val_t(128)); }},
      {"aligned operator delete", kDeleteAligned, [] { ::operator delete(g_sink, std::align_val_t(128)); }},
      {"std::vector", kNew, [] {
         std::vector<float> v(1000, 1.0f);
         g_sink = v.data();
       }},
      {"std::string", kNew, [] {
         std::string s(100, 'x');
         g_sink = &s[0];
       }},
      {"pthread_mutex_lock", kMutexLock, [] {
         static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
         pthread_mutex_lock(&mutex);
         pthread_mutex_unlock(&mutex);
       }},
  };
  for (const Probe& probe : probes) {
    const Counts c = counted(probe.call);
    check(c.value[probe.kind] >= 1, std::string("the counter missed a deliberate ") + probe.what + " (saw " +
                                        c.describe() + "): the allocation test would pass vacuously");
  }
  // and nothing is counted while the flag is off, or on another thread while it is on here
  std::atomic<int> step{0};
  std::thread other([&step] {
    while (step.load() != 1) std::this_thread::yield();
    g_sink = std::malloc(8);
    std::free(g_sink);
    step.store(2);
  });
  const Counts before = snapshot_counts();
  g_sink = std::malloc(8);
  std::free(g_sink);
  const Counts after = counted([&step] {
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
  });
  other.join();
  check(counted_since(before).total() == 0,
        "calls outside the flag or on another thread were counted: " + after.describe());
}

// Control changes from another thread while the audio thread processes.
class ControlThread {
 public:
  ControlThread(Engine& engine, uint64_t seed) : engine_(engine) {
    if (engine.model().num_controls() == 0) return;
    thread_ = std::thread([this, seed] {
      std::mt19937_64 rng(seed);
      std::uniform_real_distribution<double> unit(0.0, 1.0);
      while (!stop_.load(std::memory_order_relaxed)) {
        const int index = static_cast<int>(rng() % engine_.model().num_controls());
        const auto& info = engine_.model().controls()[index];
        engine_.set_control(index, info.minimum + unit(rng) * (info.maximum - info.minimum));
        changes_.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  ~ControlThread() { stop(); }
  uint64_t stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    return changes_.load();
  }

 private:
  Engine& engine_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> changes_{0};
  std::thread thread_;
};

enum class Entry { process, control_track, c_api };
const char* entry_name(Entry entry) {
  return entry == Entry::process ? "Engine::process" : entry == Entry::control_track
                                                            ? "Engine::process_with_control_track"
                                                            : "nc_engine_process";
}

// Feeds `frames` samples in buffers of `buffer` through `entry`, a NaN buffer every `nan_every`
// buffers (0: none), counting only inside the calls. Returns the calls' counts.
Counts stream_counted(Engine& engine, nc_engine* c_engine, Entry entry, int buffer, size_t frames, int nan_every,
                      uint64_t seed, int* nan_buffers) {
  const int channels = engine.num_channels();
  const int key_rows = channels * engine.model().sidechain_channels();
  std::mt19937_64 rng(seed);
  const size_t material = std::min<size_t>(frames, 1 << 15);
  Planar input = nctest::program_material(channels, material + buffer, rng());
  Planar key = nctest::program_material(key_rows, material + buffer, rng());  // no rows when unkeyed
  const float* const* key_ptrs = key_rows > 0 ? key.in.data() : nullptr;
  Planar output(channels, static_cast<size_t>(buffer));
  std::vector<std::vector<float>> track(engine.model().num_controls(), std::vector<float>(buffer));
  std::vector<const float*> track_rows;
  for (const auto& row : track) track_rows.push_back(row.data());
  if (track_rows.empty()) track_rows.push_back(nullptr);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  Counts total;
  size_t done = 0;
  for (int call = 0; done < frames; ++call) {
    const size_t at = done % material;
    input.point(at);
    key.point(at);
    output.point(0);
    const bool poison = nan_every > 0 && call % nan_every == nan_every - 1;
    // a keyed model gets every other poisoned sample in its key
    float* poisoned = key_rows > 0 && (call / nan_every) % 2 == 1 ? &key.data[key_rows - 1][at] : &input.data[0][at];
    const float saved = *poisoned;
    if (poison) *poisoned = std::nanf("");
    for (auto& row : track) {  // a new control value every call (and NaN = keep sometimes)
      const float v = unit(rng);
      std::fill(row.begin(), row.end(), rng() % 8 == 0 ? std::nanf("") : v);
    }
    bool ok = false;
    const Counts c = counted([&] {
      if (entry == Entry::process) {
        ok = engine.process(input.in.data(), output.out.data(), channels, buffer, key_ptrs, key_rows);
      }
      if (entry == Entry::control_track) {
        ok = engine.process_with_control_track(input.in.data(), output.out.data(), channels, buffer,
                                               track_rows.data(), key_ptrs, key_rows);
      }
      if (entry == Entry::c_api && key_rows == 0) {
        ok = nc_engine_process(c_engine, input.in.data(), output.out.data(), channels, buffer) == 0;
      }
      if (entry == Entry::c_api && key_rows > 0) {
        ok = nc_engine_process_keyed(c_engine, input.in.data(), output.out.data(), channels, buffer, key_ptrs,
                                     key_rows) == 0;
      }
    });
    *poisoned = saved;
    check(ok, std::string(entry_name(entry)) + " refused a valid call");
    for (int k = 0; k < kKinds; ++k) total.value[k] += c.value[k];
    if (poison) ++*nan_buffers;
    done += buffer;
  }
  return total;
}

void check_model(nctest::Runner& runner, const std::string& dir, const std::string& preset, const std::string& mode,
                 int controls, int keys = 0) {
  const std::string path = nctest::model_path(dir, preset, mode, controls, keys);
  const std::string name = preset + " " + mode + " " + std::to_string(controls) + " controls" +
                           (keys ? ", keyed by " + std::to_string(keys) + " sidechain channels" : "");
  for (auto [channels, linked] : {std::pair{1, false}, std::pair{2, false}, std::pair{2, true}}) {
    const std::string setup = name + (channels == 1 ? " mono" : linked ? " stereo linked" : " stereo unlinked");
    runner.run("no allocation in process: " + setup, [&, channels = channels, linked = linked] {
      const auto model = Model::load_file(path);
      constexpr int kMaxBlock = 4096;
      Engine engine(model, channels, kMaxBlock);
      if (linked) engine.set_linked(true);
      char error[256] = "";
      nc_model* c_model = nc_model_load_file(path.c_str(), error, sizeof error);
      check(c_model != nullptr, error);
      nc_engine* c_engine = nc_engine_create(c_model, channels, kMaxBlock, error, sizeof error);
      nc_model_free(c_model);
      check(c_engine != nullptr, error);
      if (linked) check(nc_engine_set_linked(c_engine, 1) == 0, "nc_engine_set_linked");
      int nan_buffers = 0;
      uint64_t seed = 1;
      ControlThread control(engine, seed);
      for (int buffer : {1, 16, 64, 512, 4096, 2 * kMaxBlock + 17}) {
        const size_t frames = buffer == 1 ? 700 : std::max<size_t>(2 * static_cast<size_t>(buffer), 4000);
        for (Entry entry : {Entry::process, Entry::control_track, Entry::c_api}) {
          const Counts c = stream_counted(engine, c_engine, entry, buffer, frames, 5, ++seed, &nan_buffers);
          check(c.total() == 0, setup + ": " + entry_name(entry) + " with " + std::to_string(buffer) +
                                    "-sample buffers allocated, freed or locked: " + c.describe());
        }
      }
      const Counts restarts = counted([&] {
        engine.restart();
        nc_engine_restart(c_engine);
      });
      check(restarts.total() == 0, setup + ": restart() allocated, freed or locked: " + restarts.describe());
      if (keys > 0) {  // a refused call (no key for a keyed model) allocates nothing either, and says why
        Planar input = nctest::program_material(channels, 64, 3);
        bool refused = false;
        const Counts c = counted([&] { refused = !engine.process(input.in.data(), input.out.data(), channels, 64); });
        check(refused && std::string(engine.refusal()).find("keyed by a sidechain") != std::string::npos,
              setup + ": a call without its key was not refused with a reason (refusal: '" + engine.refusal() + "')");
        check(c.total() == 0, setup + ": a refused call allocated, freed or locked: " + c.describe());
      }
      const uint64_t changes = control.stop();
      check(controls == 0 || changes > 0, "the control thread changed nothing");
      check(engine.nonfinite_buffers() + nc_engine_nonfinite_buffers(c_engine) == nan_buffers,
            "the NaN buffers were not all muted and counted");
      nc_engine_free(c_engine);
    });
  }
}

// Ten seconds at 44.1 kHz without a reset, controls moving on another thread, one NaN buffer.
void check_long_stream(nctest::Runner& runner, const std::string& dir) {
  runner.run("no allocation in a 10 s stream: sptmod25 causal 7 controls stereo linked, 64-sample buffers", [&] {
    const auto model = Model::load_file(nctest::model_path(dir, "sptmod25", "causal", 7));
    Engine engine(model, 2, 512);
    engine.set_linked(true);
    int nan_buffers = 0;
    ControlThread control(engine, 99);
    const size_t frames = 10 * 44100;
    const Counts c = stream_counted(engine, nullptr, Entry::process, 64, frames, 3445, 7, &nan_buffers);
    check(control.stop() > 0, "the control thread changed nothing");
    check(c.total() == 0, "Engine::process allocated, freed or locked in the 10 s stream: " + c.describe());
    check(nan_buffers == 2 && engine.nonfinite_buffers() == 2, "the NaN buffers were not muted and counted");
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  nctest::Runner runner;
  runner.run("the allocation counter is live", check_counter_is_live);
  check_model(runner, dir, "tiny", "causal", 7);
  check_model(runner, dir, "tiny", "paper", 7);
  check_model(runner, dir, "sptmod25", "paper", 0);
  check_model(runner, dir, "tiny_max", "paper", 7);
  check_model(runner, dir, "tcn", "causal", 7);
  check_model(runner, dir, "tiny", "causal", 7, 1);
  check_model(runner, dir, "tiny", "paper", 2, 2);
  check_long_stream(runner, dir);
  return runner.exit_code();
}
