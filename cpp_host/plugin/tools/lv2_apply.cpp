// nc-lv2-apply: run an LV2 plugin on a sound file with lilv, Debian's LV2 host library.
//
//   nc-lv2-apply -i IN.wav -o OUT.wav [-c SYMBOL VALUE]... [-b BLOCK] PLUGIN_URI      (LV2_PATH finds the bundle)
//
// lv2apply (lilv-utils) does the same but offers no LV2 options feature, which every DPF plugin
// requires (it refuses to instantiate: "Options feature missing"); this host provides urid:map,
// options (block lengths, sample rate) and bounded block length. The output file is float32 at the
// input's rate; the plugin's reported latency is printed as "latency N".
#include <lilv/lilv.h>
#include <lv2/buf-size/buf-size.h>
#include <lv2/core/lv2.h>
#include <lv2/options/options.h>
#include <lv2/parameters/parameters.h>
#include <lv2/urid/urid.h>
#include <sndfile.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "nc-lv2-apply: %s\n", message.c_str());
  std::exit(2);
}

std::vector<std::string> g_uris;
LV2_URID map_uri(LV2_URID_Map_Handle, const char* uri) {
  for (size_t i = 0; i < g_uris.size(); ++i)
    if (g_uris[i] == uri) return static_cast<LV2_URID>(i + 1);
  g_uris.emplace_back(uri);
  return static_cast<LV2_URID>(g_uris.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::string in_path, out_path, uri_text;
  std::map<std::string, float> controls;
  int block = 512;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-i" && i + 1 < argc) in_path = argv[++i];
    else if (a == "-o" && i + 1 < argc) out_path = argv[++i];
    else if (a == "-b" && i + 1 < argc) block = std::atoi(argv[++i]);
    else if (a == "-c" && i + 2 < argc) {
      controls[argv[i + 1]] = static_cast<float>(std::atof(argv[i + 2]));
      i += 2;
    } else if (uri_text.empty() && a[0] != '-') uri_text = a;
    else die("usage: nc-lv2-apply -i IN.wav -o OUT.wav [-c SYMBOL VALUE]... [-b BLOCK] PLUGIN_URI");
  }
  if (in_path.empty() || out_path.empty() || uri_text.empty() || block < 1) die("missing -i, -o, URI or bad -b");

  SF_INFO in_info;
  std::memset(&in_info, 0, sizeof in_info);
  SNDFILE* in_file = sf_open(in_path.c_str(), SFM_READ, &in_info);
  if (!in_file) die("cannot read " + in_path + ": " + sf_strerror(nullptr));
  const int channels = in_info.channels;
  const long frames = static_cast<long>(in_info.frames);
  std::vector<float> interleaved(static_cast<size_t>(frames) * channels);
  sf_readf_float(in_file, interleaved.data(), frames);
  sf_close(in_file);

  LilvWorld* world = lilv_world_new();
  lilv_world_load_all(world);
  LilvNode* uri = lilv_new_uri(world, uri_text.c_str());
  const LilvPlugin* plugin = lilv_plugins_get_by_uri(lilv_world_get_all_plugins(world), uri);
  if (!plugin) die("plugin " + uri_text + " not found in LV2_PATH");

  LilvNode* audio_class = lilv_new_uri(world, LV2_CORE__AudioPort);
  LilvNode* control_class = lilv_new_uri(world, LV2_CORE__ControlPort);
  LilvNode* input_class = lilv_new_uri(world, LV2_CORE__InputPort);
  const uint32_t num_ports = lilv_plugin_get_num_ports(plugin);
  std::vector<float> control_values(num_ports, 0.0f);
  std::vector<uint32_t> audio_in, audio_out;
  const int latency_port = lilv_plugin_has_latency(plugin) ? static_cast<int>(lilv_plugin_get_latency_port_index(plugin)) : -1;
  for (uint32_t p = 0; p < num_ports; ++p) {
    const LilvPort* port = lilv_plugin_get_port_by_index(plugin, p);
    const bool is_input = lilv_port_is_a(plugin, port, input_class);
    if (lilv_port_is_a(plugin, port, audio_class)) {
      (is_input ? audio_in : audio_out).push_back(p);
    } else if (lilv_port_is_a(plugin, port, control_class)) {
      LilvNode* def = nullptr;
      lilv_port_get_range(plugin, port, &def, nullptr, nullptr);
      if (def) control_values[p] = lilv_node_as_float(def);
      lilv_node_free(def);
      const std::string symbol = lilv_node_as_string(lilv_port_get_symbol(plugin, port));
      auto found = controls.find(symbol);
      if (found != controls.end()) {
        control_values[p] = found->second;
        controls.erase(found);
      }
    }
  }
  if (!controls.empty()) die("unknown control symbol " + controls.begin()->first);
  if (static_cast<int>(audio_in.size()) != channels || static_cast<int>(audio_out.size()) != channels)
    die("the plugin has " + std::to_string(audio_in.size()) + " audio inputs, the file " + std::to_string(channels) +
        " channels");

  // Features DPF needs: urid:map and options (block lengths, sample rate).
  LV2_URID_Map map = {nullptr, map_uri};
  const int32_t min_block = 1, max_block = block;
  const float rate = static_cast<float>(in_info.samplerate);
  const LV2_URID atom_int = map_uri(nullptr, "http://lv2plug.in/ns/ext/atom#Int");
  const LV2_URID atom_float = map_uri(nullptr, "http://lv2plug.in/ns/ext/atom#Float");
  const LV2_Options_Option options[] = {
      {LV2_OPTIONS_INSTANCE, 0, map_uri(nullptr, LV2_BUF_SIZE__minBlockLength), sizeof(int32_t), atom_int, &min_block},
      {LV2_OPTIONS_INSTANCE, 0, map_uri(nullptr, LV2_BUF_SIZE__maxBlockLength), sizeof(int32_t), atom_int, &max_block},
      {LV2_OPTIONS_INSTANCE, 0, map_uri(nullptr, LV2_PARAMETERS__sampleRate), sizeof(float), atom_float, &rate},
      {LV2_OPTIONS_INSTANCE, 0, 0, 0, 0, nullptr}};
  const LV2_Feature map_feature = {LV2_URID__map, &map};
  const LV2_Feature options_feature = {LV2_OPTIONS__options, const_cast<LV2_Options_Option*>(options)};
  const LV2_Feature bounded_feature = {LV2_BUF_SIZE__boundedBlockLength, nullptr};
  const LV2_Feature* features[] = {&map_feature, &options_feature, &bounded_feature, nullptr};

  LilvInstance* instance = lilv_plugin_instantiate(plugin, in_info.samplerate, features);
  if (!instance) die("the plugin failed to instantiate");
  for (uint32_t p = 0; p < num_ports; ++p) {
    const LilvPort* port = lilv_plugin_get_port_by_index(plugin, p);
    if (lilv_port_is_a(plugin, port, control_class)) lilv_instance_connect_port(instance, p, &control_values[p]);
  }
  std::vector<std::vector<float>> in(channels, std::vector<float>(block)), out(channels, std::vector<float>(block));
  for (int c = 0; c < channels; ++c) {
    lilv_instance_connect_port(instance, audio_in[c], in[c].data());
    lilv_instance_connect_port(instance, audio_out[c], out[c].data());
  }
  lilv_instance_activate(instance);
  std::vector<float> result(static_cast<size_t>(frames) * channels);
  for (long start = 0; start < frames; start += block) {
    const long n = std::min<long>(block, frames - start);
    for (int c = 0; c < channels; ++c)
      for (long t = 0; t < n; ++t) in[c][t] = interleaved[static_cast<size_t>(start + t) * channels + c];
    lilv_instance_run(instance, static_cast<uint32_t>(n));
    for (int c = 0; c < channels; ++c)
      for (long t = 0; t < n; ++t) result[static_cast<size_t>(start + t) * channels + c] = out[c][t];
  }
  lilv_instance_deactivate(instance);
  if (latency_port >= 0) std::printf("latency %d\n", static_cast<int>(control_values[latency_port]));
  lilv_instance_free(instance);

  SF_INFO out_info = in_info;
  out_info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* out_file = sf_open(out_path.c_str(), SFM_WRITE, &out_info);
  if (!out_file) die("cannot write " + out_path);
  sf_writef_float(out_file, result.data(), frames);
  sf_close(out_file);
  lilv_node_free(uri);
  lilv_node_free(audio_class);
  lilv_node_free(control_class);
  lilv_node_free(input_class);
  lilv_world_free(world);
  return 0;
}
