// nc-clap-host: a small CLAP host for tests and benchmarks (dlopen, clap_entry, activate, process).
//
//   nc-clap-host PLUGIN.clap --list                       parameters (id, name, min, max, default), latency
//   nc-clap-host PLUGIN.clap --rate HZ --in IN.f32 --out OUT.f32 [--channels 2]
//                [--blocks N | --random-blocks SEED:MAX] [--set NAME=VALUE@SAMPLE ...] [--count-allocations]
//   nc-clap-host PLUGIN.clap --rate HZ --bench BLOCK [--seconds S]   time per process call
//   nc-clap-host --engine MODEL.ts --bench BLOCK [--seconds S]        the same for the bare engine (C API)
//
// Audio files are raw planar float32 (channel 0's samples, then channel 1's). --channels counts the
// outputs; the input file holds every input port's channels in port order (a keyed model's plugin: the
// audio channels, then its sidechain port's channels). A --set takes effect at
// the start of the block that begins at SAMPLE (blocks are cut there). --count-allocations replaces
// malloc/free and operator new/delete in this binary (the plugin binds to them) and fails with exit
// status 3 if anything is allocated or freed inside any process() call.
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "clap/entry.h"
#include "clap/events.h"
#include "clap/ext/audio-ports.h"
#include "clap/ext/latency.h"
#include "clap/ext/params.h"
#include "clap/host.h"
#include "clap/plugin-factory.h"
#include "clap/plugin.h"
#include "clap/process.h"
#include "neuralcomp/engine_c.h"

// ---- allocation counting -------------------------------------------------------------------------
extern "C" void* __libc_malloc(size_t);
extern "C" void __libc_free(void*);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* __libc_memalign(size_t, size_t);

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
inline void note() {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t n) { note(); return __libc_malloc(n); }
void free(void* p) { if (p) note(); __libc_free(p); }
void* calloc(size_t a, size_t b) { note(); return __libc_calloc(a, b); }
void* realloc(void* p, size_t n) { note(); return __libc_realloc(p, n); }
void* memalign(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
void* aligned_alloc(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
int posix_memalign(void** out, size_t a, size_t n) {
  note();
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;
}
}
void* operator new(size_t n) {
  void* p = malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, std::align_val_t a) {
  void* p = nullptr;
  if (posix_memalign(&p, static_cast<size_t>(a), n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { free(p); }
void operator delete[](void* p) noexcept { free(p); }
void operator delete(void* p, size_t) noexcept { free(p); }
void operator delete[](void* p, size_t) noexcept { free(p); }
void operator delete(void* p, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { free(p); }

// ---- the host --------------------------------------------------------------------------------------
namespace {

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "nc-clap-host: %s\n", message.c_str());
  std::exit(2);
}

void host_request(const clap_host_t*) {}
const clap_host_latency_t g_host_latency = {host_request};  // the plugin reports; we query it after activate
const void* host_get_extension(const clap_host_t*, const char* id) {
  return std::strcmp(id, CLAP_EXT_LATENCY) == 0 ? &g_host_latency : nullptr;
}

struct EventList {
  std::vector<clap_event_param_value_t> events;
  static uint32_t size(const clap_input_events_t* list) {
    return static_cast<uint32_t>(static_cast<const EventList*>(list->ctx)->events.size());
  }
  static const clap_event_header_t* get(const clap_input_events_t* list, uint32_t i) {
    return &static_cast<const EventList*>(list->ctx)->events[i].header;
  }
};
bool push_nothing(const clap_output_events_t*, const clap_event_header_t*) { return true; }

struct Automation {
  long sample;
  clap_id id;
  double value;
};

struct Loaded {
  const clap_plugin_entry_t* entry = nullptr;
  const clap_plugin_t* plugin = nullptr;
  const clap_plugin_params_t* params = nullptr;
  const clap_plugin_latency_t* latency = nullptr;
  std::vector<uint32_t> input_channels, output_channels;
};

clap_host_t g_host = {CLAP_VERSION, nullptr, "nc-clap-host", "neuralcomp", "", "1.0",
                      host_get_extension, host_request, host_request, host_request};

Loaded load(const char* path) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle) die(std::string("dlopen failed: ") + dlerror());
  Loaded l;
  l.entry = static_cast<const clap_plugin_entry_t*>(dlsym(handle, "clap_entry"));
  if (!l.entry) die("no clap_entry symbol");
  if (!l.entry->init(path)) die("clap_entry.init failed");
  auto* factory = static_cast<const clap_plugin_factory_t*>(l.entry->get_factory(CLAP_PLUGIN_FACTORY_ID));
  if (!factory || factory->get_plugin_count(factory) < 1) die("no plugin factory or no plugin");
  const clap_plugin_descriptor_t* desc = factory->get_plugin_descriptor(factory, 0);
  l.plugin = factory->create_plugin(factory, &g_host, desc->id);
  if (!l.plugin || !l.plugin->init(l.plugin)) die("create_plugin/init failed");
  l.params = static_cast<const clap_plugin_params_t*>(l.plugin->get_extension(l.plugin, CLAP_EXT_PARAMS));
  l.latency = static_cast<const clap_plugin_latency_t*>(l.plugin->get_extension(l.plugin, CLAP_EXT_LATENCY));
  auto* ports = static_cast<const clap_plugin_audio_ports_t*>(l.plugin->get_extension(l.plugin, CLAP_EXT_AUDIO_PORTS));
  if (!ports) die("no audio-ports extension");
  for (int is_input = 1; is_input >= 0; --is_input) {
    for (uint32_t i = 0; i < ports->count(l.plugin, is_input); ++i) {
      clap_audio_port_info_t info;
      ports->get(l.plugin, i, is_input, &info);
      (is_input ? l.input_channels : l.output_channels).push_back(info.channel_count);
    }
  }
  std::printf("plugin %s (%s)\n", desc->name, desc->id);
  return l;
}

clap_id param_id(const Loaded& l, const std::string& name) {
  for (uint32_t i = 0; l.params && i < l.params->count(l.plugin); ++i) {
    clap_param_info_t info;
    l.params->get_info(l.plugin, i, &info);
    if (name == info.name) return info.id;
  }
  die("unknown parameter '" + name + "'");
}

std::vector<float> read_f32(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) die("cannot open " + path);
  std::vector<float> data;
  float buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, sizeof(float), 4096, f)) > 0) data.insert(data.end(), buffer, buffer + n);
  std::fclose(f);
  return data;
}

}  // namespace

namespace {

// The bare engine, stereo, at its own rate, in calls of `block` frames: the baseline of the plugin benchmark.
int bench_engine(const char* model_path, int block, double seconds) {
  char error[512] = {0};
  nc_model* model = nc_model_load_file(model_path, error, sizeof error);
  if (!model) die(std::string("the engine refused the model: ") + error);
  nc_engine* engine = nc_engine_create(model, 2, block, error, sizeof error);
  if (!engine) die(std::string("engine: ") + error);
  const double rate = nc_model_sample_rate(model);
  const long frames = static_cast<long>(seconds * rate) / block * block;
  std::vector<float> audio(static_cast<size_t>(frames) * 2), out(static_cast<size_t>(block) * 2);
  std::mt19937 noise(1);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (float& v : audio) v = normal(noise);
  double total = 0.0, worst = 0.0;
  long calls = 0;
  for (long start = 0; start < frames; start += block, ++calls) {
    const float* in[2] = {audio.data() + start, audio.data() + frames + start};
    float* o[2] = {out.data(), out.data() + block};
    const auto t0 = std::chrono::steady_clock::now();
    nc_engine_process(engine, in, o, 2, block);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total += dt;
    worst = std::max(worst, dt);
  }
  std::printf("bench block %d calls %ld mean_us %.3f max_us %.3f rtf %.5f\n", block, calls, 1e6 * total / calls,
              1e6 * worst, total / (static_cast<double>(frames) / rate));
  nc_engine_free(engine);
  nc_model_free(model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) die("usage: nc-clap-host PLUGIN.clap (--list | --rate HZ ...); see the source header");
  if (std::string(argv[1]) == "--engine") {
    int block = 0;
    double seconds = 2.0;
    for (int i = 3; i + 1 < argc; i += 2) {
      if (std::string(argv[i]) == "--bench") block = std::atoi(argv[i + 1]);
      else if (std::string(argv[i]) == "--seconds") seconds = std::atof(argv[i + 1]);
      else die(std::string("unknown argument ") + argv[i]);
    }
    if (block < 1) die("--engine needs --bench BLOCK");
    return bench_engine(argv[2], block, seconds);
  }
  const char* path = argv[1];
  double rate = 44100.0;
  int channels = 2, fixed_block = 0, bench_block = 0, random_max = 0;
  unsigned seed = 0;
  double bench_seconds = 2.0;
  bool list = false, count_allocations = false;
  std::string in_path, out_path;
  std::vector<std::string> sets;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--list") list = true;
    else if (a == "--rate") rate = std::atof(value().c_str());
    else if (a == "--channels") channels = std::atoi(value().c_str());
    else if (a == "--in") in_path = value();
    else if (a == "--out") out_path = value();
    else if (a == "--blocks") fixed_block = std::atoi(value().c_str());
    else if (a == "--random-blocks") {
      const std::string v = value();
      const size_t colon = v.find(':');
      if (colon == std::string::npos) die("--random-blocks needs SEED:MAX");
      seed = static_cast<unsigned>(std::stoul(v.substr(0, colon)));
      random_max = std::atoi(v.substr(colon + 1).c_str());
    } else if (a == "--set") sets.push_back(value());
    else if (a == "--count-allocations") count_allocations = true;
    else if (a == "--bench") bench_block = std::atoi(value().c_str());
    else if (a == "--seconds") bench_seconds = std::atof(value().c_str());
    else die("unknown argument " + a);
  }

  Loaded l = load(path);
  if (list) {
    for (uint32_t i = 0; l.params && i < l.params->count(l.plugin); ++i) {
      clap_param_info_t info;
      l.params->get_info(l.plugin, i, &info);
      std::printf("param\t%u\t%s\t%.9g\t%.9g\t%.9g\t%u\n", info.id, info.name, info.min_value, info.max_value,
                  info.default_value, info.flags);
    }
  }
  const int max_frames = 8192;
  if (!l.plugin->activate(l.plugin, rate, 1, max_frames)) die("activate failed");
  std::printf("latency %u\n", l.latency ? l.latency->get(l.plugin) : 0u);
  if (list) return 0;
  if (!l.plugin->start_processing(l.plugin)) die("start_processing failed");

  uint32_t total_in = 0, total_out = 0;
  for (uint32_t c : l.input_channels) total_in += c;
  for (uint32_t c : l.output_channels) total_out += c;
  if (static_cast<int>(total_in) < channels || static_cast<int>(total_out) != channels)
    die("the plugin has " + std::to_string(total_in) + " inputs / " + std::to_string(total_out) +
        " outputs, --channels is " + std::to_string(channels));
  const int in_channels = static_cast<int>(total_in);  // the audio, then any sidechain ports

  long frames = 0;
  std::vector<float> input;
  if (bench_block > 0) {
    frames = static_cast<long>(bench_seconds * rate) / bench_block * bench_block;
    input.resize(static_cast<size_t>(frames) * in_channels);
    std::mt19937 noise(1);
    std::normal_distribution<float> normal(0.0f, 0.1f);
    for (float& v : input) v = normal(noise);
    fixed_block = bench_block;
  } else {
    if (in_path.empty() || out_path.empty()) die("--in and --out are required");
    input = read_f32(in_path);
    frames = static_cast<long>(input.size() / in_channels);
  }
  std::vector<float> output(static_cast<size_t>(frames) * channels, 0.0f);

  std::vector<Automation> automation;
  for (const std::string& s : sets) {
    const size_t eq = s.find('='), at = s.find('@');
    if (eq == std::string::npos || at == std::string::npos || at < eq) die("--set needs NAME=VALUE@SAMPLE: " + s);
    automation.push_back({std::atol(s.c_str() + at + 1), param_id(l, s.substr(0, eq)),
                          std::atof(s.substr(eq + 1, at - eq - 1).c_str())});
  }

  // Buffers sized once; the audio pointers move through the planar arrays.
  std::vector<std::vector<float*>> in_ptrs(l.input_channels.size()), out_ptrs(l.output_channels.size());
  std::vector<clap_audio_buffer_t> in_buffers(l.input_channels.size()), out_buffers(l.output_channels.size());
  for (size_t p = 0; p < in_ptrs.size(); ++p) in_ptrs[p].resize(l.input_channels[p]);
  for (size_t p = 0; p < out_ptrs.size(); ++p) out_ptrs[p].resize(l.output_channels[p]);
  EventList events;
  events.events.reserve(automation.size() + 1);
  clap_input_events_t in_events = {&events, EventList::size, EventList::get};
  clap_output_events_t out_events = {nullptr, push_nothing};
  std::mt19937 rng(seed);

  clap_process_t proc;
  std::memset(&proc, 0, sizeof proc);
  proc.audio_inputs = in_buffers.data();
  proc.audio_outputs = out_buffers.data();
  proc.audio_inputs_count = static_cast<uint32_t>(in_buffers.size());
  proc.audio_outputs_count = static_cast<uint32_t>(out_buffers.size());
  proc.in_events = &in_events;
  proc.out_events = &out_events;

  double seconds = 0.0, worst = 0.0;
  long calls = 0;
  size_t next_automation = 0;
  for (long start = 0; start < frames;) {
    long n = fixed_block > 0 ? fixed_block : (random_max > 0 ? 1 + static_cast<long>(rng() % random_max) : 512);
    n = std::min<long>({n, frames - start, max_frames});
    events.events.clear();
    while (next_automation < automation.size() && automation[next_automation].sample <= start) {
      const Automation& a = automation[next_automation++];
      clap_event_param_value_t e;
      std::memset(&e, 0, sizeof e);
      e.header = {sizeof e, 0, CLAP_CORE_EVENT_SPACE_ID, CLAP_EVENT_PARAM_VALUE, 0};
      e.param_id = a.id;
      e.note_id = -1;
      e.port_index = -1;
      e.channel = -1;
      e.key = -1;
      e.value = a.value;
      events.events.push_back(e);
    }
    if (next_automation < automation.size()) n = std::min(n, automation[next_automation].sample - start);
    int ch = 0;
    for (size_t p = 0; p < in_ptrs.size(); ++p) {
      for (auto& ptr : in_ptrs[p]) ptr = input.data() + static_cast<size_t>(ch++) * frames + start;
      in_buffers[p] = {in_ptrs[p].data(), nullptr, static_cast<uint32_t>(in_ptrs[p].size()), 0, 0};
    }
    ch = 0;
    for (size_t p = 0; p < out_ptrs.size(); ++p) {
      for (auto& ptr : out_ptrs[p]) ptr = output.data() + static_cast<size_t>(ch++) * frames + start;
      out_buffers[p] = {out_ptrs[p].data(), nullptr, static_cast<uint32_t>(out_ptrs[p].size()), 0, 0};
    }
    proc.frames_count = static_cast<uint32_t>(n);
    proc.steady_time = start;
    const bool counting = count_allocations;
    const auto t0 = std::chrono::steady_clock::now();
    g_counting.store(counting);
    const clap_process_status status = l.plugin->process(l.plugin, &proc);
    g_counting.store(false);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (status == CLAP_PROCESS_ERROR) die("process returned CLAP_PROCESS_ERROR");
    seconds += dt;
    worst = std::max(worst, dt);
    ++calls;
    start += n;
  }
  for (uint32_t i = 0; l.params && i < l.params->count(l.plugin); ++i) {
    clap_param_info_t info;
    double v = 0.0;
    l.params->get_info(l.plugin, i, &info);
    l.params->get_value(l.plugin, info.id, &v);
    std::printf("value\t%s\t%.9g\n", info.name, v);
  }
  l.plugin->stop_processing(l.plugin);
  l.plugin->deactivate(l.plugin);

  if (bench_block > 0) {
    std::printf("bench block %d calls %ld mean_us %.3f max_us %.3f rtf %.5f\n", bench_block, calls,
                1e6 * seconds / calls, 1e6 * worst, seconds / (static_cast<double>(frames) / rate));
  } else {
    FILE* f = std::fopen(out_path.c_str(), "wb");
    if (!f) die("cannot write " + out_path);
    std::fwrite(output.data(), sizeof(float), output.size(), f);
    std::fclose(f);
  }
  if (count_allocations) {
    std::printf("allocations %ld\n", g_allocations.load());
    if (g_allocations.load() != 0) return 3;
  }
  l.plugin->destroy(l.plugin);
  l.entry->deinit();
  return 0;
}
