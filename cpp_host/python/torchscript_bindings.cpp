// pybind11 module `_cpp_host`: Python access to neuralcomp::StreamingHost (the C++ host), so the
// C++ path can be tested against the Python TorchScript path and used from Python tools.
// Torch tensors never cross into Python: audio and state are numpy arrays, so importing this
// module does not need `import torch`.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/typing.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "host.h"

namespace py = pybind11;
using neuralcomp::StreamingHost;

namespace {

std::string describe(const py::handle& obj) {
  if (py::isinstance<py::array>(obj)) {
    const auto arr = py::reinterpret_borrow<py::array>(obj);
    std::string shape = "(";
    for (py::ssize_t i = 0; i < arr.ndim(); ++i) {
      if (i) shape += ", ";
      shape += std::to_string(arr.shape(i));
    }
    if (arr.ndim() == 1) shape += ",";
    shape += ")";
    return "a " + std::to_string(arr.ndim()) + "-d " + py::str(arr.dtype()).cast<std::string>() +
           " array of shape " + shape;
  }
  return "an object of type " + py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
}

py::array process(StreamingHost& host, const py::object& obj, const py::object& sidechain) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::value_error("process expects a numpy float32 array of shape (channels, frames), got " +
                          describe(obj));
  }
  auto x = py::reinterpret_borrow<py::array>(obj);
  if (!x.dtype().equal(py::dtype::of<float>()) || x.ndim() != 2) {
    throw py::value_error("process expects a numpy float32 array of shape (channels, frames), got " +
                          describe(obj));
  }
  if (!(x.flags() & py::array::c_style)) {
    x = py::array::ensure(x, py::array::c_style);  // e.g. x[:, a:b] of a multichannel array: one copy
    if (!x) throw py::error_already_set();
  }
  const int64_t channels = x.shape(0);
  const int64_t frames = x.shape(1);
  py::array key;
  const float* key_data = nullptr;
  if (!sidechain.is_none()) {
    const int64_t rows = channels * host.sidechain_channels();
    if (host.sidechain_channels() == 0) throw py::value_error("this model has no sidechain input");
    if (!py::isinstance<py::array>(sidechain)) {
      throw py::value_error("sidechain must be a numpy float32 array, got " + describe(sidechain));
    }
    key = py::array::ensure(sidechain, py::array::c_style);
    if (!key) throw py::error_already_set();
    if (!key.dtype().equal(py::dtype::of<float>()) || key.ndim() != 2 || key.shape(0) != rows ||
        key.shape(1) != frames) {
      throw py::value_error("sidechain: " + describe(sidechain) + " does not match the audio, " + describe(obj) +
                            ": expected float32 (" + std::to_string(rows) + ", " + std::to_string(frames) + ")");
    }
    key_data = static_cast<const float*>(key.data());
  }
  py::array_t<float> y({static_cast<py::ssize_t>(channels), static_cast<py::ssize_t>(frames)});
  const float* in = static_cast<const float*>(x.data());
  float* out = y.mutable_data();
  {
    py::gil_scoped_release release;
    host.process(in, out, channels, frames, key_data);
  }
  return y;
}

// Streams x (channels, frames) in buffers of `buffer_size`, timing each host call in C++ (no Python in
// the measurement): seconds per timed call, after `warmup_calls` untimed calls. A keyed model's key
// (channels * sidechain_channels, frames) streams alongside.
py::array_t<double> time_buffers(StreamingHost& host, const py::array_t<float, py::array::c_style>& x,
                                 int buffer_size, int warmup_calls, const py::object& sidechain) {
  if (x.ndim() != 2 || x.shape(0) != host.num_channels() || buffer_size < 1) {
    throw py::value_error("time_buffers expects float32 (channels, frames) and buffer_size >= 1");
  }
  const int64_t key_rows = x.shape(0) * host.sidechain_channels();
  py::array_t<float, py::array::c_style> key;
  if (key_rows > 0) {
    if (sidechain.is_none()) throw py::value_error("time_buffers: this model is keyed by a sidechain: pass its key");
    key = py::array_t<float, py::array::c_style>::ensure(sidechain);
    if (!key || key.ndim() != 2 || key.shape(0) != key_rows || key.shape(1) != x.shape(1)) {
      throw py::value_error("time_buffers: the key must be float32 (" + std::to_string(key_rows) + ", " +
                            std::to_string(x.shape(1)) + "), got " + describe(sidechain));
    }
  } else if (!sidechain.is_none()) {
    throw py::value_error("time_buffers: this model has no sidechain input");
  }
  const py::ssize_t calls = x.shape(1) / buffer_size;
  if (calls <= warmup_calls) throw py::value_error("audio too short for the warm-up calls");
  const int64_t channels = x.shape(0);
  std::vector<float> in(static_cast<size_t>(channels) * buffer_size), out(in.size());
  std::vector<float> key_buffer(static_cast<size_t>(key_rows) * buffer_size);
  py::array_t<double> times(calls - warmup_calls);
  double* t = times.mutable_data();
  py::gil_scoped_release release;
  for (py::ssize_t i = 0; i < calls; ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      std::memcpy(in.data() + c * buffer_size, x.data(c, 0) + i * buffer_size, sizeof(float) * buffer_size);
    }
    for (int64_t r = 0; r < key_rows; ++r) {
      std::memcpy(key_buffer.data() + r * buffer_size, key.data(r, 0) + i * buffer_size, sizeof(float) * buffer_size);
    }
    const auto start = std::chrono::steady_clock::now();
    host.process(in.data(), out.data(), channels, buffer_size, key_rows > 0 ? key_buffer.data() : nullptr);
    const auto stop = std::chrono::steady_clock::now();
    if (i >= warmup_calls) t[i - warmup_calls] = std::chrono::duration<double>(stop - start).count();
  }
  return times;
}

py::typing::List<py::array> get_state(const StreamingHost& host) {
  std::vector<at::Tensor> state;
  {
    py::gil_scoped_release release;
    state = host.get_state();
  }
  py::typing::List<py::array> out;
  for (const at::Tensor& t0 : state) {
    const at::Tensor t = t0.contiguous();
    std::vector<py::ssize_t> shape(t.sizes().begin(), t.sizes().end());
    py::dtype dtype;
    switch (t.scalar_type()) {
      case at::kFloat: dtype = py::dtype::of<float>(); break;
      case at::kLong: dtype = py::dtype::of<int64_t>(); break;
      case at::kDouble: dtype = py::dtype::of<double>(); break;
      case at::kInt: dtype = py::dtype::of<int32_t>(); break;
      default: throw std::runtime_error("get_state: unexpected dtype " + std::string(c10::toString(t.scalar_type())));
    }
    py::array arr(dtype, shape);  // owns its memory
    if (t.numel() > 0) std::memcpy(arr.mutable_data(), t.const_data_ptr(), t.nbytes());
    out.append(arr);
  }
  return out;
}

void set_state(StreamingHost& host, const py::sequence& items) {
  std::vector<at::Tensor> state;
  state.reserve(py::len(items));
  size_t index = 0;
  for (const py::handle& item : items) {
    py::array arr = py::array::ensure(item, py::array::c_style);
    if (!arr) {
      throw py::value_error("set_state: item " + std::to_string(index) + " is " + describe(item) +
                            ", not convertible to a numpy array");
    }
    at::ScalarType type;
    const py::dtype dt = arr.dtype();
    if (dt.equal(py::dtype::of<float>())) {
      type = at::kFloat;
    } else if (dt.equal(py::dtype::of<double>())) {
      type = at::kDouble;
    } else if (dt.equal(py::dtype::of<int64_t>())) {
      type = at::kLong;
    } else if (dt.equal(py::dtype::of<int32_t>())) {
      type = at::kInt;
    } else {
      throw py::value_error("set_state: item " + std::to_string(index) + " is " + describe(item) +
                            "; expected float32 arrays (and an int64 scalar 'phase' first)");
    }
    std::vector<int64_t> shape(arr.shape(), arr.shape() + arr.ndim());
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
    if (t.numel() > 0) std::memcpy(t.mutable_data_ptr(), arr.data(), t.nbytes());
    state.push_back(t);
    ++index;
  }
  py::gil_scoped_release release;
  host.set_state(state);
}

}  // namespace

PYBIND11_MODULE(_cpp_host, m) {
  m.doc() = R"doc(neuralcomp C++ host (libtorch): run an exported streaming SPTMod buffer by buffer.

Host(path, num_channels=1) loads a model written by export.export_model, checks it (raises
ModelLoadError, a RuntimeError, for a missing, truncated, foreign or too-new file), sets the
controls to their defaults, resets the stream and warms it up. Host.process(x) takes and returns
float32 numpy arrays of shape (channels, frames); its output is bitwise identical to the Python
TorchScript path for any buffer partition. Controls are in user units (e.g. dB); bad names or
values raise ValueError. The host runs libtorch with one intra-op thread (process-wide).)doc";

  m.attr("SUPPORTED_SCHEMA") = neuralcomp::kSupportedSchema;
#if defined(__clang__)
  m.attr("COMPILER") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("COMPILER") = "GCC " __VERSION__;
#else
  m.attr("COMPILER") = "unknown";
#endif
  py::register_exception<neuralcomp::ModelLoadError>(m, "ModelLoadError", PyExc_RuntimeError);

  py::class_<StreamingHost>(m, "Host", "A neuralcomp streaming model loaded in the C++ host.")
      .def(py::init<const std::string&, int>(), py::arg("path"), py::arg("num_channels") = 1,
           py::call_guard<py::gil_scoped_release>(),
           "Load the model at `path` for a stream of `num_channels` channels (raises ModelLoadError).")
      .def("process", &process, py::arg("x"), py::arg("sidechain") = py::none(),
           "Process one buffer: x is a float32 array (channels, frames) with channels equal to num_channels\n"
           "(C-contiguous avoids a copy); returns a new float32 array of the same shape. Other dtypes or\n"
           "shapes raise ValueError. Releases the GIL while processing. `sidechain`: float32\n"
           "(channels * sidechain_channels, frames) for a keyed model, else None.")
      .def_property_readonly("sidechain_channels", &StreamingHost::sidechain_channels,
                             "Sidechain (key) channels per audio channel; 0: the model keys from its input.")
      .def("time_buffers", &time_buffers, py::arg("x"), py::arg("buffer_size"), py::arg("warmup_calls") = 20,
           py::arg("sidechain") = py::none(),
           "Seconds per host call, timed in C++, streaming x (and its key) in buffers.")
      .def(
          "reset",
          [](StreamingHost& host, std::optional<int> num_channels) {
            py::gil_scoped_release release;
            if (num_channels) {
              host.reset(*num_channels);
            } else {
              host.reset();
            }
          },
          py::arg("num_channels") = py::none(),
          "Restart the stream from the start state at the current controls, optionally changing the\n"
          "channel count.")
      .def_property("linked", &StreamingHost::linked,
                    [](StreamingHost& host, bool linked) {
                      py::gil_scoped_release release;
                      host.set_linked(linked);
                    },
                    "Stereo link (one modulation path for all channels); setting it resets the stream.")
      .def("set_control", &StreamingHost::set_control, py::arg("name"), py::arg("value"),
           "Set a control in user units; ValueError for an unknown name or a value outside its range.")
      .def("get_control", &StreamingHost::get_control, py::arg("name"),
           "The current value of a control in user units.")
      .def("get_state", &get_state,
           "The stream state as numpy arrays, in state_names order: an int64 0-d 'phase', then float32.")
      .def("set_state", &set_state, py::arg("state"),
           "Restore a get_state() snapshot; ValueError (with the model's message) if it does not fit.")
      .def_property_readonly("control_names", &StreamingHost::control_names)
      .def_property_readonly("control_minimum", &StreamingHost::control_minimum)
      .def_property_readonly("control_maximum", &StreamingHost::control_maximum)
      .def_property_readonly("control_log_mapping", &StreamingHost::control_log_mapping)
      .def_property_readonly("control_default", &StreamingHost::control_default)
      .def_property_readonly("control_values", &StreamingHost::control_values,
                             "Current control values in user units, in control_names order.")
      .def_property_readonly("latency_samples", &StreamingHost::latency_samples)
      .def_property_readonly("sample_rate", &StreamingHost::sample_rate)
      .def_property_readonly("pool_size", &StreamingHost::pool_size)
      .def_property_readonly("mode", &StreamingHost::mode)
      .def_property_readonly("metadata_json", &StreamingHost::metadata_json)
      .def_property_readonly("schema_version", &StreamingHost::schema_version)
      .def_property_readonly("model_path", &StreamingHost::model_path)
      .def_property_readonly("num_channels", &StreamingHost::num_channels)
      .def_property_readonly("nonfinite_buffers", &StreamingHost::nonfinite_buffers)
      .def_property_readonly("state_names", &StreamingHost::state_names)
      .def("__repr__", [](const StreamingHost& host) {
        return "<neuralcomp Host '" + host.model_path() + "' mode=" + host.mode() +
               " sample_rate=" + std::to_string(host.sample_rate()) +
               " channels=" + std::to_string(host.num_channels()) + ">";
      });
}
