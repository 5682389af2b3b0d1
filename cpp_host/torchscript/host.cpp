#include "host.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <system_error>
#include <utility>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/runtime/jit_exception.h>

namespace neuralcomp {
namespace {

// Sizes of the warm-up buffers the constructor runs on silence (the TorchScript profiling
// executor makes the first calls slow); then the stream is reset so the warm-up leaves no trace.
constexpr int64_t kWarmupSizes[] = {512, 512, 64, 1, 2048};

const char* const kRequiredMethods[] = {"forward", "reset", "state_names", "get_state", "set_state"};

// The first line of a libtorch error, without miniz's generic advice after it.
std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  const auto advice = line.find(" This is an internal miniz error");
  if (advice != std::string::npos) line.erase(advice);
  return line;
}

// The message of an exception raised inside the TorchScript module, without the interpreter's
// traceback: the original message when the interpreter kept it, else the last non-empty line
// with any "builtins.XxxError: " prefix removed.
std::string module_message(const std::exception& e) {
  if (const auto* jit = dynamic_cast<const torch::jit::JITException*>(&e)) {
    if (auto original = jit->getOriginalMsg(); original && !original->empty()) {
      return *original;
    }
  }
  std::string text;
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) {
    text = c10e->what_without_backtrace();
  } else {
    text = e.what();
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto nl = text.rfind('\n');
  std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
  const std::string prefix = "builtins.";
  if (last.compare(0, prefix.size(), prefix) == 0) {
    const auto colon = last.find(": ");
    if (colon != std::string::npos) last = last.substr(colon + 2);
  }
  return last;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

std::string format_number(double v) {
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}

// OpenMP's thread count is per calling thread: set one thread in every thread that runs the model
// (an audio callback's thread, not only the loader's), once per thread.
void use_one_thread_here() {
  thread_local bool done = false;
  if (!done) {
    at::set_num_threads(1);
    done = true;
  }
}

}  // namespace

StreamingHost::StreamingHost(const std::string& model_path, int num_channels) : model_path_(model_path) {
  if (num_channels < 1) {
    throw std::invalid_argument("num_channels must be >= 1, got " + std::to_string(num_channels));
  }
  use_one_thread_here();

  const std::string quoted = "'" + model_path + "'";
  std::error_code ec;
  const auto status = std::filesystem::status(model_path, ec);
  if (!std::filesystem::exists(status)) {
    throw ModelLoadError("neuralcomp model file " + quoted + " not found");
  }
  if (std::filesystem::is_directory(status)) {
    throw ModelLoadError("neuralcomp model " + quoted + " is a directory, not a model file");
  }

  try {
    module_ = torch::jit::load(model_path, torch::kCPU);
  } catch (const c10::Error& e) {
    throw ModelLoadError("cannot load " + quoted +
                         ": not a TorchScript archive, or the file is truncated or corrupt (" +
                         first_line(e.what_without_backtrace()) + ")");
  } catch (const std::exception& e) {
    throw ModelLoadError("cannot load " + quoted +
                         ": not a TorchScript archive, or the file is truncated or corrupt (" +
                         first_line(e.what()) + ")");
  }

  if (!module_.hasattr("neuralcomp_schema_version")) {
    throw ModelLoadError(quoted +
                         " is a TorchScript file but not a neuralcomp model "
                         "(it has no neuralcomp_schema_version attribute)");
  }
  const c10::IValue version = module_.attr("neuralcomp_schema_version");
  if (!version.isInt()) {
    throw ModelLoadError(quoted + " is not a valid neuralcomp model (neuralcomp_schema_version is " +
                         version.tagKind() + ", not int)");
  }
  schema_version_ = version.toInt();
  if (schema_version_ > kSupportedSchema) {
    throw ModelLoadError(quoted + " was made by a newer neuralcomp (schema " + std::to_string(schema_version_) +
                         " > " + std::to_string(kSupportedSchema) + "); upgrade the neuralcomp host");
  }
  if (schema_version_ < 1) {
    throw ModelLoadError(quoted + " is not a valid neuralcomp model (schema version " +
                         std::to_string(schema_version_) + " < 1)");
  }

  std::vector<std::string> missing;
  for (const char* name : kRequiredMethods) {
    if (!module_.find_method(name)) missing.emplace_back(name);
  }
  if (!missing.empty()) {
    throw ModelLoadError(quoted + ": the neuralcomp model lacks the method(s) " + join(missing, ", "));
  }

  // attributes: read and type-check
  auto attr = [&](const char* name) -> c10::IValue {
    if (!module_.hasattr(name)) {
      throw ModelLoadError(quoted + ": the neuralcomp model lacks the attribute '" + std::string(name) + "'");
    }
    return module_.attr(name);
  };
  auto bad_type = [&](const char* name, const c10::IValue& v, const char* expected) {
    return ModelLoadError(quoted + ": attribute '" + std::string(name) + "' is " + v.tagKind() + ", expected " +
                          expected);
  };
  auto int_attr = [&](const char* name) -> int64_t {
    const c10::IValue v = attr(name);
    if (!v.isInt()) throw bad_type(name, v, "int");
    return v.toInt();
  };
  auto str_attr = [&](const char* name) -> std::string {
    const c10::IValue v = attr(name);
    if (!v.isString()) throw bad_type(name, v, "str");
    return v.toStringRef();
  };
  auto float_list_attr = [&](const char* name) -> std::vector<double> {
    const c10::IValue v = attr(name);
    if (!v.isDoubleList()) throw bad_type(name, v, "List[float]");
    std::vector<double> out;
    for (const double d : v.toDoubleList()) out.push_back(d);
    return out;
  };

  sample_rate_ = int_attr("sample_rate");
  pool_size_ = int_attr("pool_size");
  latency_samples_ = int_attr("latency_samples");
  num_controls_ = int_attr("num_controls");
  // files exported before the sidechain existed, and TCNs, have no such attribute: no sidechain input
  sidechain_channels_ = module_.hasattr("num_sidechain") ? int_attr("num_sidechain") : 0;
  int_attr("num_channels");
  int_attr("nonfinite_buffers");
  mode_ = str_attr("mode");
  metadata_json_ = str_attr("metadata_json");
  {
    const c10::IValue v = attr("control_names");
    if (!v.isList()) throw bad_type("control_names", v, "List[str]");
    for (const c10::IValue& item : v.toListRef()) {
      if (!item.isString()) throw bad_type("control_names", v, "List[str]");
      control_names_.push_back(item.toStringRef());
    }
  }
  control_minimum_ = float_list_attr("control_minimum");
  control_maximum_ = float_list_attr("control_maximum");
  control_default_ = float_list_attr("control_default");
  const size_t n = control_names_.size();
  // optional: files exported before log mappings existed have all controls linear
  control_log_mapping_.assign(n, false);
  if (module_.hasattr("control_log_mapping")) {
    const c10::IValue v = module_.attr("control_log_mapping");
    if (!v.isBoolList()) throw bad_type("control_log_mapping", v, "List[bool]");
    const c10::List<bool> flags = v.toBoolList();
    if (flags.size() != n) {
      throw ModelLoadError(quoted + ": control_log_mapping has " + std::to_string(flags.size()) + " entries for " +
                           std::to_string(n) + " controls");
    }
    for (size_t i = 0; i < n; ++i) control_log_mapping_[i] = flags.get(i);
  }

  if (num_controls_ < 0 || static_cast<size_t>(num_controls_) != n || control_minimum_.size() != n ||
      control_maximum_.size() != n || control_default_.size() != n) {
    throw ModelLoadError(quoted + ": inconsistent controls (num_controls " + std::to_string(num_controls_) +
                         ", " + std::to_string(n) + " names, " + std::to_string(control_minimum_.size()) +
                         " minima, " + std::to_string(control_maximum_.size()) + " maxima, " +
                         std::to_string(control_default_.size()) + " defaults)");
  }
  for (size_t i = 0; i < n; ++i) {
    const double lo = control_minimum_[i], hi = control_maximum_[i], d = control_default_[i];
    if (!(lo < hi) || !(d >= lo && d <= hi) || (control_log_mapping_[i] && !(lo > 0))) {
      throw ModelLoadError(quoted + ": control '" + control_names_[i] + "' has an invalid range [" +
                           format_number(lo) + ", " + format_number(hi) + "] or default " + format_number(d));
    }
  }
  if (sample_rate_ <= 0 || pool_size_ <= 0 || latency_samples_ < 0) {
    throw ModelLoadError(quoted + ": invalid sample_rate/pool_size/latency_samples (" +
                         std::to_string(sample_rate_) + ", " + std::to_string(pool_size_) + ", " +
                         std::to_string(latency_samples_) + ")");
  }

  control_values_ = control_default_;
  std::lock_guard<std::mutex> lock(mutex_);
  rebuild_controls_locked();
  try {
    reset_locked(num_channels);
    use_one_thread_here();
    c10::InferenceMode guard;
    for (const int64_t frames : kWarmupSizes) {
      std::vector<c10::IValue> inputs{at::zeros({static_cast<int64_t>(num_channels), frames}), controls_};
      if (sidechain_channels_ > 0) inputs.emplace_back(at::zeros({num_channels * sidechain_channels_, frames}));
      module_.forward(inputs);
    }
    reset_locked(num_channels);
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw ModelLoadError(quoted + ": the model failed on silence during reset/warm-up: " + module_message(e));
  }
}

void StreamingHost::rebuild_controls_locked() {
  at::Tensor t = at::empty({num_controls_}, at::kFloat);
  float* data = t.data_ptr<float>();
  for (int64_t i = 0; i < num_controls_; ++i) {
    // the same arithmetic as ControlSpec.normalise in Python (double), then rounded to float32
    const double lo = control_minimum_[i], hi = control_maximum_[i], v = control_values_[i];
    data[i] = static_cast<float>(control_log_mapping_[i] ? std::log(v / lo) / std::log(hi / lo) : (v - lo) / (hi - lo));
  }
  controls_ = t;
}

void StreamingHost::reset_locked(int64_t num_channels) {
  if (num_channels < 1) {
    throw std::invalid_argument("num_channels must be >= 1, got " + std::to_string(num_channels));
  }
  use_one_thread_here();
  c10::InferenceMode guard;
  try {
    module_.get_method("reset")({c10::IValue(num_channels), controls_});
  } catch (const std::exception& e) {
    throw std::runtime_error("reset failed: " + module_message(e));
  }
}

void StreamingHost::process(const float* input, float* output, int64_t num_channels, int64_t num_frames,
                            const float* sidechain) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t current = module_.attr("num_channels").toInt();
  if (num_channels != current) {
    throw std::invalid_argument("process: got " + std::to_string(num_channels) + " channel(s), the stream has " +
                                std::to_string(current) + " (call reset(" + std::to_string(num_channels) +
                                ") to change)");
  }
  if (num_frames < 0) {
    throw std::invalid_argument("process: num_frames must be >= 0, got " + std::to_string(num_frames));
  }
  if (num_frames == 0) return;
  if (input == nullptr || output == nullptr) {
    throw std::invalid_argument("process: null input or output buffer");
  }
  if ((sidechain != nullptr) != (sidechain_channels_ > 0)) {
    throw std::invalid_argument(sidechain_channels_ > 0
        ? "process: this model is keyed by " + std::to_string(sidechain_channels_) +
              " sidechain channel(s) per audio channel: pass a sidechain of " +
              std::to_string(num_channels * sidechain_channels_) + " x " + std::to_string(num_frames) + " samples"
        : std::string("process: this model has no sidechain input, got a sidechain buffer"));
  }

  use_one_thread_here();

  c10::InferenceMode guard;
  // no copy: the module reads x and never keeps a view of it in its state
  at::Tensor x = at::from_blob(const_cast<float*>(input), {num_channels, num_frames},
                                  at::TensorOptions().dtype(at::kFloat));
  at::Tensor y;
  try {
    if (sidechain == nullptr) {
      y = module_.forward({x, controls_}).toTensor();
    } else {
      at::Tensor key = at::from_blob(const_cast<float*>(sidechain), {num_channels * sidechain_channels_, num_frames},
                                     at::TensorOptions().dtype(at::kFloat));
      y = module_.forward({x, controls_, key}).toTensor();
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("process failed: " + module_message(e));
  }
  if (y.scalar_type() != at::kFloat || y.dim() != 2 || y.size(0) != num_channels || y.size(1) != num_frames) {
    throw std::runtime_error("process: the model returned an unexpected tensor " + y.toString() + " " +
                             c10::str(y.sizes()));
  }
  // one (possibly strided: paper mode returns a view of its output queue) copy into `output`
  at::from_blob(output, {num_channels, num_frames}, at::TensorOptions().dtype(at::kFloat)).copy_(y);
}

void StreamingHost::set_linked(bool linked) {
  std::lock_guard<std::mutex> lock(mutex_);
  use_one_thread_here();
  c10::InferenceMode guard;
  try {
    module_.get_method("set_linked")({c10::IValue(linked), controls_});
  } catch (const std::exception& e) {
    throw std::runtime_error("set_linked failed: " + module_message(e));
  }
}

bool StreamingHost::linked() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return module_.attr("linked").toBool();
}

void StreamingHost::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  reset_locked(module_.attr("num_channels").toInt());
}

void StreamingHost::reset(int num_channels) {
  std::lock_guard<std::mutex> lock(mutex_);
  reset_locked(num_channels);
}

size_t StreamingHost::control_index(const std::string& name) const {
  const auto it = std::find(control_names_.begin(), control_names_.end(), name);
  if (it == control_names_.end()) {
    throw std::invalid_argument("unknown control '" + name + "'; this model's controls are: " +
                                (control_names_.empty() ? std::string("(none)") : join(control_names_, ", ")));
  }
  return static_cast<size_t>(it - control_names_.begin());
}

void StreamingHost::set_control(const std::string& name, double value) {
  const size_t i = control_index(name);
  const double lo = control_minimum_[i], hi = control_maximum_[i];
  if (std::isnan(value) || value < lo || value > hi) {
    throw std::invalid_argument("control '" + name + "' must be in [" + format_number(lo) + ", " +
                                format_number(hi) + "], got " + format_number(value));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  control_values_[i] = value;
  rebuild_controls_locked();
}

double StreamingHost::get_control(const std::string& name) const {
  const size_t i = control_index(name);
  std::lock_guard<std::mutex> lock(mutex_);
  return control_values_[i];
}

std::vector<double> StreamingHost::control_values() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return control_values_;
}

int64_t StreamingHost::num_channels() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return module_.attr("num_channels").toInt();
}

int64_t StreamingHost::nonfinite_buffers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return module_.attr("nonfinite_buffers").toInt();
}

std::vector<std::string> StreamingHost::state_names() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> names;
  const c10::IValue result = module_.get_method("state_names")({});  // keep alive while iterating
  for (const c10::IValue& v : result.toListRef()) {
    names.push_back(v.toStringRef());
  }
  return names;
}

std::vector<at::Tensor> StreamingHost::get_state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  // Outside InferenceMode on purpose: the module returns clones, which are then ordinary tensors
  // the caller may modify in place.
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> state;
  const c10::IValue result = module_.get_method("get_state")({});  // keep alive while iterating
  for (const c10::IValue& v : result.toListRef()) {
    state.push_back(v.toTensor());
  }
  return state;
}

void StreamingHost::set_state(const std::vector<at::Tensor>& state) {
  std::lock_guard<std::mutex> lock(mutex_);
  use_one_thread_here();
  c10::InferenceMode guard;
  c10::List<at::Tensor> list;
  list.reserve(state.size());
  for (const at::Tensor& t : state) {
    if (!t.defined()) throw std::invalid_argument("set_state: undefined tensor in the state");
    list.push_back(t.device().is_cpu() ? t : t.cpu());
  }
  // A snapshot is restored only into a stream of its own layout: the same channel count (from
  // output_queue, the last entry, (channels, samples)) and the same stereo link (block0.conv_cache,
  // the second entry, has one detector channel when linked). With one channel, linking changes nothing.
  const int64_t current = module_.attr("num_channels").toInt();
  const bool current_linked = module_.attr("linked").toBool() && current > 1;
  if (state.size() > 2 && state.back().dim() == 2 && state[1].dim() >= 1) {
    const int64_t incoming = state.back().size(0);
    const bool incoming_linked = incoming > 1 && state[1].size(0) == 1;
    if (incoming != current || incoming_linked != current_linked) {
      const auto layout = [](int64_t n, bool linked) {
        return std::to_string(n) + (n == 1 ? " channel" : " channels") +
               (n > 1 ? (linked ? " (linked)" : " (unlinked)") : "");
      };
      std::string steps;
      if (incoming > 1 && incoming_linked != module_.attr("linked").toBool()) {
        steps = std::string("set linked = ") + (incoming_linked ? "True" : "False");
      }
      if (incoming != current) {
        steps += (steps.empty() ? "" : " and ") + std::string("reset to ") + std::to_string(incoming) + " channel(s)";
      }
      throw std::invalid_argument("set_state: snapshot has " + layout(incoming, incoming_linked) +
                                  ", the stream has " + layout(current, current_linked) + "; " + steps + " first");
    }
  }
  try {
    module_.get_method("set_state")({c10::IValue(list)});
  } catch (const std::exception& e) {
    throw std::invalid_argument("set_state: " + module_message(e));
  }
}

}  // namespace neuralcomp
