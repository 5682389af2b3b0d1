// Model loading: the archive's engine entry -> validated, kernel-ready weights.
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "archive.hpp"
#include "neuralcomp/engine.hpp"
#include "weights.hpp"

namespace neuralcomp {
namespace {

constexpr const char* kEngineEntry = "/extra/neuralcomp_engine.bin";
constexpr const char* kMetadataEntry = "/extra/neuralcomp_metadata.json";
constexpr char kMagic[8] = {'N', 'C', 'E', 'N', 'G', 'I', 'N', 'E'};
constexpr size_t kHeaderBytes = 24;
// Bounds that no real model reaches; a crafted file cannot make the engine allocate without limit.
constexpr int kMaxChannels = 1024, kMaxKernel = 1024, kMaxHidden = 1024, kMaxBlocks = 64, kMaxControls = 256;
constexpr int kMaxPool = 16384;
constexpr int kMaxDilation = 1 << 16, kMaxContext = 1 << 20;

uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

}  // namespace

float ControlInfo::normalise(double value) const {
  // the same arithmetic as ControlSpec.normalise in Python (double), then rounded to float32
  return static_cast<float>(log_mapping ? std::log(value / minimum) / std::log(maximum / minimum)
                                        : (value - minimum) / (maximum - minimum));
}

struct ModelParser {
  const std::string& source;
  const nlohmann::json& index;
  const float* data;  // little-endian float32 (checked at load: the engine builds for little-endian hosts)
  size_t data_floats;

  [[noreturn]] void refuse(const std::string& why) const { throw ModelFileError(source + ": " + why); }

  int integer(const nlohmann::json& object, const char* key, int minimum, int maximum) const {
    const auto it = object.find(key);
    if (it == object.end() || !it->is_number_integer()) refuse(std::string("engine index lacks integer '") + key + "'");
    const int64_t value = it->get<int64_t>();
    if (value < minimum || value > maximum) {
      refuse(std::string("engine index '") + key + "' = " + std::to_string(value) + " outside [" +
             std::to_string(minimum) + ", " + std::to_string(maximum) + "]");
    }
    return static_cast<int>(value);
  }

  // The tensor `name` with exactly `shape`, as a flat copy; refuses missing, misshapen, non-finite data.
  std::vector<float> tensor(const std::map<std::string, const nlohmann::json*>& tensors, const std::string& name,
                            const std::vector<int64_t>& shape) const {
    const auto it = tensors.find(name);
    if (it == tensors.end()) refuse("engine entry lacks tensor '" + name + "'");
    const nlohmann::json& t = *it->second;
    const auto shape_it = t.find("shape");
    if (shape_it == t.end() || !shape_it->is_array() || shape_it->size() != shape.size()) {
      refuse("tensor '" + name + "' has the wrong number of dimensions");
    }
    size_t count = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      const auto& dim = (*shape_it)[d];
      if (!dim.is_number_integer() || dim.get<int64_t>() != shape[d]) {
        refuse("tensor '" + name + "' has shape " + shape_it->dump() + ", the architecture needs dimension " +
               std::to_string(d) + " = " + std::to_string(shape[d]));
      }
      count *= static_cast<size_t>(shape[d]);
    }
    const auto offset_it = t.find("offset");
    if (offset_it == t.end() || !offset_it->is_number_unsigned()) refuse("tensor '" + name + "' has no offset");
    const uint64_t offset = offset_it->get<uint64_t>();
    if (offset > data_floats || data_floats - offset < count) refuse("tensor '" + name + "' runs past the data");
    std::vector<float> values(data + offset, data + offset + count);
    for (float v : values) {
      if (!std::isfinite(v)) refuse("tensor '" + name + "' holds NaN or Inf (corrupt or diverged model)");
    }
    return values;
  }

  void parse_controls(Model& model) const {
    const auto controls = index.find("controls");
    if (controls == index.end() || !controls->is_array() || controls->size() > kMaxControls) {
      refuse("engine index has no valid control list");
    }
    for (const auto& c : *controls) {
      ControlInfo info;
      if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) refuse("a control has no name");
      info.name = c["name"].get<std::string>();
      if (c.contains("unit") && c["unit"].is_string()) info.unit = c["unit"].get<std::string>();
      for (const char* key : {"minimum", "maximum", "default"}) {
        if (!c.contains(key) || !c[key].is_number()) refuse("control '" + info.name + "' lacks a numeric " + key);
      }
      info.minimum = c["minimum"].get<double>();
      info.maximum = c["maximum"].get<double>();
      info.default_value = c["default"].get<double>();
      info.log_mapping = c.contains("mapping") && c["mapping"].is_string() && c["mapping"].get<std::string>() == "log";
      if (!(info.minimum < info.maximum) || !(info.default_value >= info.minimum && info.default_value <= info.maximum) ||
          (info.log_mapping && !(info.minimum > 0)) || !std::isfinite(info.minimum) || !std::isfinite(info.maximum)) {
        refuse("control '" + info.name + "' has an invalid range or default");
      }
      model.controls_.push_back(info);
    }
  }

  std::map<std::string, const nlohmann::json*> tensor_index() const {
    std::map<std::string, const nlohmann::json*> tensors;
    const auto list = index.find("tensors");
    if (list == index.end() || !list->is_array()) refuse("engine index has no tensor list");
    for (const auto& t : *list) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) refuse("a tensor has no name");
      tensors[t["name"].get<std::string>()] = &t;
    }
    return tensors;
  }

  const nlohmann::json& block_list() const {
    const auto blocks = index.find("blocks");
    if (blocks == index.end() || !blocks->is_array() || blocks->empty() || blocks->size() > kMaxBlocks) {
      refuse("engine index has no valid block list");
    }
    return *blocks;
  }

  // conv_weight_t (c_in * k, c) has row i * k + tap; the kernels want row tap * c_in + i, lanes wide
  void conv_and_film(const std::map<std::string, const nlohmann::json*>& tensors, const std::string& prefix,
                     int n, BlockWeights& w) const {
    const int c = w.channels, c_in = w.in_channels, k = w.kernel_size, h = w.film_hidden;
    w.lanes = padded_lanes(c);
    const auto conv = tensor(tensors, prefix + "conv_weight_t", {c_in * k, c});
    w.conv_weight.assign(static_cast<size_t>(k) * c_in * w.lanes, 0.0f);
    for (int tap = 0; tap < k; ++tap)
      for (int i = 0; i < c_in; ++i)
        for (int o = 0; o < c; ++o)
          w.conv_weight[(static_cast<size_t>(tap) * c_in + i) * w.lanes + o] = conv[(static_cast<size_t>(i) * k + tap) * c + o];
    w.conv_bias = tensor(tensors, prefix + "conv_bias", {c});
    w.conv_bias.resize(w.lanes, 0.0f);
    w.prelu = tensor(tensors, prefix + "prelu_weight", {c});
    w.prelu.resize(w.lanes, 0.0f);
    if (h > 0) {
      w.film0_weight = tensor(tensors, prefix + "film0_weight_t", {n, h});
      w.film0_bias = tensor(tensors, prefix + "film0_bias", {h});
      w.film0_prelu = tensor(tensors, prefix + "film0_prelu", {h});
      w.film1_weight = tensor(tensors, prefix + "film1_weight_t", {h, h});
      w.film1_bias = tensor(tensors, prefix + "film1_bias", {h});
      w.film1_prelu = tensor(tensors, prefix + "film1_prelu", {h});
      w.film2_weight = tensor(tensors, prefix + "film2_weight_t", {h, 2 * c});
      w.film2_bias = tensor(tensors, prefix + "film2_bias", {2 * c});
    }
  }

  // A block's object and the fields every architecture's blocks share (channels, kernel, FiLM width).
  std::unique_ptr<BlockWeights> block_shape(const nlohmann::json& b, size_t j) const {
    if (!b.is_object()) refuse("block " + std::to_string(j) + " is not an object");
    auto w = std::make_unique<BlockWeights>();
    w->in_channels = integer(b, "in_channels", 1, kMaxChannels);
    w->channels = integer(b, "channels", 1, kMaxChannels);
    w->kernel_size = integer(b, "kernel_size", 1, kMaxKernel);
    w->film_hidden = integer(b, "film_hidden", 0, kMaxHidden);
    return w;
  }

  [[noreturn]] void refuse_unchained(size_t j) const {
    refuse("block " + std::to_string(j) + " does not chain with its neighbours (an architecture this engine "
           "cannot run)");
  }

  // The TCN baseline (export/streaming_tcn.py): blocks of dilated conv, FiLM, PReLU and residual, then a gain.
  void parse_tcn(Model& model) const {
    model.pool_size_ = integer(index, "pool_size", 1, 1);
    model.lstm_hidden_ = 0;
    model.interpolation_weights_ = {1.0f};
    const auto mode = index.find("mode");
    if (mode == index.end() || !mode->is_string() || mode->get<std::string>() != "causal") {
      refuse("a TCN's engine index mode must be 'causal'");
    }
    model.mode_ = "causal";
    model.paper_mode_ = false;
    parse_controls(model);
    const int n = static_cast<int>(model.controls_.size());
    const auto tensors = tensor_index();
    const nlohmann::json& blocks = block_list();
    int previous_channels = 1;
    for (size_t j = 0; j < blocks.size(); ++j) {
      const auto& b = blocks[j];
      auto w = block_shape(b, j);
      w->dilation = integer(b, "dilation", 1, kMaxDilation);
      if (!b.contains("residual_projection") || !b["residual_projection"].is_boolean()) {
        refuse("block lacks residual_projection");
      }
      w->residual_projection = b["residual_projection"].get<bool>();
      if (w->in_channels != previous_channels || w->residual_projection != (w->in_channels != w->channels) ||
          (w->film_hidden > 0) != (n > 0)) {
        refuse_unchained(j);
      }
      w->context = (w->kernel_size - 1) * w->dilation;
      if (w->context > kMaxContext) refuse("block " + std::to_string(j) + " looks back too far");
      previous_channels = w->channels;
      const std::string prefix = "block" + std::to_string(j) + ".";
      conv_and_film(tensors, prefix, n, *w);
      if (w->residual_projection) {
        const auto residual = tensor(tensors, prefix + "residual_weight_t", {w->in_channels, w->channels});
        w->residual_weight.assign(static_cast<size_t>(w->in_channels) * w->lanes, 0.0f);
        for (int i = 0; i < w->in_channels; ++i)
          std::memcpy(&w->residual_weight[static_cast<size_t>(i) * w->lanes],
                      &residual[static_cast<size_t>(i) * w->channels], sizeof(float) * w->channels);
        w->residual_bias = tensor(tensors, prefix + "residual_bias", {w->channels});
        w->residual_bias.resize(w->lanes, 0.0f);
      }
      model.blocks_.push_back(std::move(w));
    }
    model.gain_weight_ = tensor(tensors, "gain_weight", {previous_channels});
    model.gain_bias_ = tensor(tensors, "gain_bias", {1})[0];
    model.gain_scale_ = tensor(tensors, "gain_scale", {1})[0];
  }

  std::shared_ptr<Model> parse(const std::string& metadata_json) const {
    std::shared_ptr<Model> model(new Model());
    model->source_ = source;
    model->metadata_json_ = metadata_json;
    const auto arch = index.find("architecture");
    if (arch == index.end() || !arch->is_string()) refuse("engine index has no architecture");
    model->architecture_ = arch->get<std::string>();
    if (model->architecture_ != "sptmod" && model->architecture_ != "tcn") {
      refuse("architecture '" + arch->get<std::string>() + "' is not one this engine can run (it runs 'sptmod' "
             "and 'tcn'); use the torchscript backend or upgrade neuralcomp");
    }
    model->sample_rate_ = integer(index, "sample_rate", 1000, 1536000);
    model->start_state_samples_ = integer(index, "start_state_samples", 0, 1 << 20);
    // keyed models (docs/engine-format.md): block 0's conv reads [input; S key channels]
    model->sidechain_channels_ = index.contains("sidechain") ? integer(index, "sidechain", 0, kMaxChannels - 1) : 0;
    if (model->architecture_ == "tcn") {
      if (model->sidechain_channels_ > 0) refuse("a TCN keyed by a sidechain is not one this engine can run");
      parse_tcn(*model);
      return model;
    }
    model->pool_size_ = integer(index, "pool_size", 1, kMaxPool);
    model->lstm_hidden_ = integer(index, "lstm_hidden", 1, kMaxHidden);
    if (model->start_state_samples_ % model->pool_size_ != 0) refuse("start_state_samples is not whole frames");
    const auto mode = index.find("mode");
    if (mode == index.end() || !mode->is_string() ||
        (mode->get<std::string>() != "causal" && mode->get<std::string>() != "paper")) {
      refuse("engine index mode must be 'causal' or 'paper'");
    }
    model->mode_ = mode->get<std::string>();
    model->paper_mode_ = model->mode_ == "paper";
    const auto pooling = index.find("pooling");  // absent: average, as every entry before the option
    if (pooling != index.end()) {
      if (!pooling->is_string() || (pooling->get<std::string>() != "average" && pooling->get<std::string>() != "max")) {
        refuse("engine index pooling must be 'average' or 'max'");
      }
      model->max_pooling_ = pooling->get<std::string>() == "max";
    }

    parse_controls(*model);
    const int n = static_cast<int>(model->controls_.size());
    const auto tensors = tensor_index();
    const int P = model->pool_size_, H = model->lstm_hidden_;
    model->interpolation_weights_ = tensor(tensors, "interp_weights", {P});

    const nlohmann::json* blocks = &block_list();
    int previous_channels = 1 + model->sidechain_channels_;
    for (size_t j = 0; j < blocks->size(); ++j) {
      const auto& b = (*blocks)[j];
      auto w = block_shape(b, j);
      if (!b.contains("modulates_next") || !b["modulates_next"].is_boolean()) refuse("block lacks modulates_next");
      w->modulates_next = b["modulates_next"].get<bool>();
      const bool last = j + 1 == blocks->size();
      if (w->in_channels != previous_channels || w->modulates_next == last || (w->film_hidden > 0) != (n > 0)) {
        refuse_unchained(j);
      }
      previous_channels = w->channels;
      const int c = w->channels;
      w->hidden = H;
      w->modulation_channels = 2 + (w->modulates_next ? 2 * c : 0);
      w->modulation_lanes = padded_lanes(w->modulation_channels);
      w->gate_lanes = padded_lanes(4 * H);
      const std::string prefix = "block" + std::to_string(j) + ".";

      conv_and_film(tensors, prefix, n, *w);
      const auto lstm = tensor(tensors, prefix + "lstm_weight_t", {c + H, 4 * H});
      w->lstm_weight.assign(static_cast<size_t>(c + H) * w->gate_lanes, 0.0f);
      for (int r = 0; r < c + H; ++r)
        std::memcpy(&w->lstm_weight[static_cast<size_t>(r) * w->gate_lanes], &lstm[static_cast<size_t>(r) * 4 * H],
                    sizeof(float) * 4 * H);
      w->lstm_bias = tensor(tensors, prefix + "lstm_bias", {4 * H});
      w->lstm_bias.resize(w->gate_lanes, 0.0f);
      const int nm = w->modulation_channels;
      const auto projection = tensor(tensors, prefix + "projection_weight_t", {H, nm});
      w->projection_weight.assign(static_cast<size_t>(H) * w->modulation_lanes, 0.0f);
      for (int r = 0; r < H; ++r)
        std::memcpy(&w->projection_weight[static_cast<size_t>(r) * w->modulation_lanes],
                    &projection[static_cast<size_t>(r) * nm], sizeof(float) * nm);
      w->projection_bias_exact = tensor(tensors, prefix + "projection_bias", {nm});
      w->projection_bias = w->projection_bias_exact;
      w->projection_bias.resize(w->modulation_lanes, 0.0f);
      model->blocks_.push_back(std::move(w));
    }
    return model;
  }
};

std::shared_ptr<const Model> Model::load_memory(const void* bytes, size_t size, const std::string& source) {
  static_assert(std::numeric_limits<float>::is_iec559, "the engine needs IEEE-754 floats");
  const uint16_t probe = 1;
  if (*reinterpret_cast<const unsigned char*>(&probe) != 1) throw ModelFileError("the engine needs a little-endian CPU");
  if (size == 0) throw ModelFileError(source + ": empty file (0 bytes), not a model");
  if (bytes == nullptr) throw ModelFileError(source + ": no data");
  const auto* archive = static_cast<const unsigned char*>(bytes);
  const detail::ArchiveEntry entry = detail::find_entry(archive, size, kEngineEntry, source);
  const detail::ArchiveEntry metadata = detail::find_entry(archive, size, kMetadataEntry, source);
  if (!entry.found) {
    if (metadata.found) {
      throw ModelFileError(source + ": exported before the native engine existed (no neuralcomp_engine.bin entry); "
                           "re-export it with `neuralcomp export --from-model OLD.ts -o NEW.ts`, or use the torchscript backend");
    }
    throw ModelFileError(source + ": not a neuralcomp model (a zip archive without neuralcomp entries)");
  }
  if (entry.size < kHeaderBytes || std::memcmp(entry.data, kMagic, 8) != 0) {
    throw ModelFileError(source + ": engine entry has no NCENGINE header (corrupt file)");
  }
  const uint32_t version = le32(entry.data + 8), index_bytes = le32(entry.data + 12), data_bytes = le32(entry.data + 16);
  const uint32_t crc = le32(entry.data + 20);
  if (version > static_cast<uint32_t>(kEngineFormatVersion)) {
    throw ModelFileError(source + ": engine layout version " + std::to_string(version) + " is newer than this engine (" +
                         std::to_string(kEngineFormatVersion) + "); upgrade neuralcomp");
  }
  if (version < 1) throw ModelFileError(source + ": engine layout version 0 is invalid (corrupt file)");
  if (index_bytes % 4 != 0 || data_bytes % 4 != 0 || entry.size - kHeaderBytes < static_cast<uint64_t>(index_bytes) + data_bytes) {
    throw ModelFileError(source + ": engine entry sizes do not fit (truncated or corrupt file)");
  }
  if (detail::crc32(entry.data + kHeaderBytes, static_cast<size_t>(index_bytes) + data_bytes) != crc) {
    throw ModelFileError(source + ": engine entry fails its checksum (corrupt file)");
  }
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(entry.data + kHeaderBytes, entry.data + kHeaderBytes + index_bytes);
  } catch (const nlohmann::json::exception& e) {
    throw ModelFileError(source + ": engine index is not valid JSON (" + e.what() + ")");
  }
  if (!index.is_object()) throw ModelFileError(source + ": engine index is not a JSON object");
  // float data is 4-byte aligned inside the entry, but the entry itself may not be: copy through memcpy
  std::vector<float> floats(data_bytes / 4);
  if (data_bytes) std::memcpy(floats.data(), entry.data + kHeaderBytes + index_bytes, data_bytes);
  const std::string metadata_json =
      metadata.found ? std::string(reinterpret_cast<const char*>(metadata.data), metadata.size) : std::string("{}");
  try {
    ModelParser parser{source, index, floats.data(), floats.size()};
    return parser.parse(metadata_json);
  } catch (const nlohmann::json::exception& e) {
    throw ModelFileError(source + ": engine index is malformed (" + e.what() + ")");
  }
}

std::shared_ptr<const Model> Model::load_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ModelFileError("model file " + path + " does not exist or cannot be read");
  std::vector<char> bytes;
  try {  // libstdc++ throws std::ios_base::failure on a read error (e.g. EISDIR for a folder)
    bytes.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  } catch (const std::ios_base::failure& e) {
    throw ModelFileError(path + ": read error (" + e.what() + ")");
  }
  if (file.bad()) throw ModelFileError(path + ": read error");
  return load_memory(bytes.data(), bytes.size(), path);
}

Model::~Model() = default;

int Model::control_index(const std::string& name) const {
  for (size_t i = 0; i < controls_.size(); ++i)
    if (controls_[i].name == name) return static_cast<int>(i);
  return -1;
}

std::vector<std::string> Model::state_names() const {
  std::vector<std::string> names{"phase"};
  if (is_tcn()) {
    for (size_t j = 0; j < blocks_.size(); ++j) names.push_back("block" + std::to_string(j) + ".conv_cache");
    return names;
  }
  for (size_t j = 0; j < blocks_.size(); ++j)
    for (const char* part : {"conv_cache", "pool_partial", "lstm_h", "lstm_c", "modulation_history"})
      names.push_back("block" + std::to_string(j) + "." + part);
  names.push_back("pending_input");
  names.push_back("output_queue");
  if (sidechain_channels_ > 0) names.push_back("pending_sidechain");
  return names;
}

}  // namespace neuralcomp
