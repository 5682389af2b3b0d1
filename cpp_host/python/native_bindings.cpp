// pybind11 module `_native`: the native engine (no libtorch) with the interface of `_cpp_host.Host`,
// so neuralcomp.Processor runs either. Engine errors become neuralcomp.errors' exception classes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "neuralcomp/engine.hpp"

namespace py = pybind11;
using neuralcomp::Engine;
using neuralcomp::Model;

namespace {

constexpr int kDefaultMaxBlock = 4096;

std::string describe(const py::handle& obj) {
  if (py::isinstance<py::array>(obj)) {
    const auto arr = py::reinterpret_borrow<py::array>(obj);
    std::string shape = "(";
    for (py::ssize_t i = 0; i < arr.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(arr.shape(i));
    if (arr.ndim() == 1) shape += ",";
    return "a " + py::str(arr.dtype()).cast<std::string>() + " array of shape " + shape + ")";
  }
  return "an object of type " + py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
}

py::array_t<float, py::array::c_style> float_matrix(const py::object& obj, const char* what, py::ssize_t rows) {
  if (!py::isinstance<py::array>(obj)) {
    throw neuralcomp::AudioInputError(std::string(what) + " must be a numpy float32 array, got " + describe(obj));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<float>()) || arr.ndim() != 2 || (rows >= 0 && arr.shape(0) != rows)) {
    throw neuralcomp::AudioInputError(std::string(what) + " must be a float32 array of shape (" +
                                      (rows >= 0 ? std::to_string(rows) : std::string("channels")) +
                                      ", frames), got " + describe(obj));
  }
  return py::array_t<float, py::array::c_style>::ensure(arr);
}

// The engine plus the model path, in the shape of the other hosts' Python interface.
class NativeHost {
 public:
  NativeHost(const std::string& path, int num_channels, int max_block_size)
      : path_(path), engine_(Model::load_file(path), num_channels, max_block_size) {}

  py::array process(const py::object& obj, const py::object& controls, const py::object& sidechain) {
    auto x = float_matrix(obj, "audio", engine_.num_channels());
    const py::ssize_t frames = x.shape(1);
    if (frames > (1LL << 31) - 1) throw neuralcomp::AudioInputError("audio is too long for one call");
    const auto key = checked_key(sidechain, x);
    std::vector<const float*> key_rows(key ? key->shape(0) : 0);
    for (size_t r = 0; r < key_rows.size(); ++r) key_rows[r] = key->data() + r * frames;
    const float* const* key_data = key ? key_rows.data() : nullptr;
    const int rows = static_cast<int>(key_rows.size());
    py::array_t<float> y({x.shape(0), frames});
    std::vector<const float*> in(x.shape(0));
    std::vector<float*> out(x.shape(0));
    // pointer arithmetic, not data(c, 0): that is bounds-checked and refuses zero frames
    for (py::ssize_t c = 0; c < x.shape(0); ++c) {
      in[c] = x.data() + c * frames;
      out[c] = y.mutable_data() + c * frames;
    }
    bool ok;
    if (controls.is_none()) {
      py::gil_scoped_release release;
      ok = engine_.process(in.data(), out.data(), static_cast<int>(in.size()), static_cast<int>(frames), key_data,
                           rows);
    } else {
      const int n = engine_.model().num_controls();
      auto track = float_matrix(controls, "control track", n);
      if (track.shape(1) != frames) {
        throw neuralcomp::ControlError("control track has " + std::to_string(track.shape(1)) +
                                       " samples, the audio " + std::to_string(frames));
      }
      std::vector<const float*> track_rows(n);
      for (int k = 0; k < n; ++k) track_rows[k] = track.data() + k * frames;
      py::gil_scoped_release release;
      ok = engine_.process_with_control_track(in.data(), out.data(), static_cast<int>(in.size()),
                                              static_cast<int>(frames), track_rows.data(), key_data, rows);
    }
    if (!ok) throw neuralcomp::AudioInputError(std::string("the engine refused the buffer: ") + engine_.refusal());
    return y;
  }

  // The key of a keyed model as float32 (channels * S, frames), checked against the audio x; nullopt
  // for an unkeyed model. AudioInputError naming both shapes when it does not fit.
  using FloatArray = py::array_t<float, py::array::c_style>;
  std::optional<FloatArray> checked_key(const py::object& sidechain, const FloatArray& x) const {
    const int keys = engine_.model().sidechain_channels();
    const py::ssize_t rows = x.shape(0) * keys, frames = x.shape(1);
    const std::string audio = "(" + std::to_string(x.shape(0)) + ", " + std::to_string(frames) + ")";
    const std::string expected = "(" + std::to_string(rows) + ", " + std::to_string(frames) + ")";
    if (sidechain.is_none()) {
      if (keys == 0) return std::nullopt;
      throw neuralcomp::AudioInputError("this model is keyed by " + std::to_string(keys) +
                                        " sidechain channel(s) per audio channel: pass a sidechain of shape " +
                                        expected + " with the audio " + audio);
    }
    if (keys == 0) {
      throw neuralcomp::AudioInputError("this model has no sidechain input, got a sidechain: " + describe(sidechain));
    }
    const bool fits = py::isinstance<py::array>(sidechain) && [&] {
      const auto arr = py::reinterpret_borrow<py::array>(sidechain);
      return arr.dtype().equal(py::dtype::of<float>()) && arr.ndim() == 2 && arr.shape(0) == rows &&
             arr.shape(1) == frames;
    }();
    if (!fits) {
      throw neuralcomp::AudioInputError("sidechain: " + describe(sidechain) + " does not match the audio " + audio +
                                        ": expected float32 " + expected + ", " + std::to_string(keys) +
                                        " sidechain channel(s) per audio channel, as many samples");
    }
    return FloatArray::ensure(sidechain);
  }

  void reset(std::optional<int> num_channels) {
    py::gil_scoped_release release;
    if (num_channels && *num_channels != engine_.num_channels()) {
      engine_.prepare(*num_channels, engine_.max_block_size());
    } else {
      engine_.reset();
    }
  }

  py::list get_state() const {
    py::list out;
    for (const auto& t : engine_.get_state()) {
      if (t.name == "phase") {
        out.append(py::array(py::dtype::of<int64_t>(), std::vector<py::ssize_t>{},
                             std::vector<int64_t>{static_cast<int64_t>(t.data[0])}.data()));
        continue;
      }
      std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
      py::array_t<float> arr(shape);
      if (!t.data.empty()) std::memcpy(arr.mutable_data(), t.data.data(), t.data.size() * sizeof(float));
      out.append(arr);
    }
    return out;
  }

  void set_state(const py::sequence& items) {
    const std::vector<std::string> names = engine_.model().state_names();
    if (static_cast<size_t>(py::len(items)) != names.size()) {
      throw neuralcomp::StateError("state has " + std::to_string(py::len(items)) + " tensors, this model needs " +
                                   std::to_string(names.size()));
    }
    std::vector<neuralcomp::StateTensor> state;
    for (size_t i = 0; i < names.size(); ++i) {
      py::array arr = py::array::ensure(items[i]);
      if (!arr) throw neuralcomp::StateError("state '" + names[i] + "' is not an array");
      auto values = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
      if (!values) throw neuralcomp::StateError("state '" + names[i] + "' is not numeric");
      neuralcomp::StateTensor t{names[i], std::vector<int64_t>(arr.shape(), arr.shape() + arr.ndim()), {}};
      t.data.assign(values.data(), values.data() + values.size());
      state.push_back(std::move(t));
    }
    py::gil_scoped_release release;
    engine_.set_state(state);
  }

  // Streams x (channels, frames) in buffers of `buffer_size`, timing each engine call in C++ (no
  // Python in the measurement): seconds per timed call, after `warmup_calls` untimed calls.
  py::array_t<double> time_buffers(const py::object& obj, int buffer_size, int warmup_calls,
                                   const py::object& sidechain) {
    auto x = float_matrix(obj, "audio", engine_.num_channels());
    const auto key = checked_key(sidechain, x);
    const int key_rows = key ? static_cast<int>(key->shape(0)) : 0;
    std::vector<const float*> key_ptrs(key_rows);
    if (buffer_size < 1) throw neuralcomp::AudioInputError("buffer_size must be >= 1");
    const py::ssize_t calls = x.shape(1) / buffer_size;
    if (calls <= warmup_calls) throw neuralcomp::AudioInputError("audio too short for the warm-up calls");
    const int channels = engine_.num_channels();
    std::vector<float> out(static_cast<size_t>(channels) * buffer_size);
    std::vector<const float*> in_ptrs(channels);
    std::vector<float*> out_ptrs(channels);
    for (int c = 0; c < channels; ++c) out_ptrs[c] = out.data() + static_cast<size_t>(c) * buffer_size;
    py::array_t<double> times(calls - warmup_calls);
    double* t = times.mutable_data();
    py::gil_scoped_release release;
    for (py::ssize_t i = 0; i < calls; ++i) {
      for (int c = 0; c < channels; ++c) in_ptrs[c] = x.data() + c * x.shape(1) + i * buffer_size;
      for (int r = 0; r < key_rows; ++r) key_ptrs[r] = key->data() + r * x.shape(1) + i * buffer_size;
      const auto start = std::chrono::steady_clock::now();
      engine_.process(in_ptrs.data(), out_ptrs.data(), channels, buffer_size, key ? key_ptrs.data() : nullptr,
                      key_rows);
      const auto stop = std::chrono::steady_clock::now();
      if (i >= warmup_calls) t[i - warmup_calls] = std::chrono::duration<double>(stop - start).count();
    }
    return times;
  }

  std::vector<double> control_values() const {
    std::vector<double> values;
    for (int i = 0; i < engine_.model().num_controls(); ++i) values.push_back(engine_.get_control(i));
    return values;
  }

  template <typename T, typename F>
  std::vector<T> per_control(F field) const {
    std::vector<T> values;
    for (const auto& c : engine_.model().controls()) values.push_back(field(c));
    return values;
  }

  Engine& engine() { return engine_; }
  const Engine& engine() const { return engine_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  Engine engine_;
};

void translate(const char* name, const std::exception& e) {
  const py::object errors = py::module_::import("neuralcomp.errors");
  PyErr_SetString(errors.attr(name).ptr(), e.what());
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "neuralcomp native engine (no libtorch): Host(path, num_channels=1, max_block_size=4096).";
  m.attr("ENGINE_FORMAT_VERSION") = neuralcomp::kEngineFormatVersion;
#if defined(__clang__)
  m.attr("COMPILER") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("COMPILER") = "GCC " __VERSION__;
#endif
#ifdef NEURALCOMP_TARGET_ARCH
  m.attr("TARGET_ARCH") = NEURALCOMP_TARGET_ARCH;
#endif
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const neuralcomp::ModelFileError& e) {
      translate("ModelFileError", e);
    } catch (const neuralcomp::AudioInputError& e) {
      translate("AudioInputError", e);
    } catch (const neuralcomp::ControlError& e) {
      translate("ControlError", e);
    } catch (const neuralcomp::StateError& e) {
      translate("StateError", e);
    }
  });

  py::class_<NativeHost>(m, "Host", "An exported model running in the native engine.")
      .def(py::init<const std::string&, int, int>(), py::arg("path"), py::arg("num_channels") = 1,
           py::arg("max_block_size") = kDefaultMaxBlock, py::call_guard<py::gil_scoped_release>())
      .def("process", &NativeHost::process, py::arg("x"), py::arg("controls") = py::none(),
           py::arg("sidechain") = py::none(),
           "x: float32 (channels, frames) -> new float32 array. `controls`: optional float32 (n, frames)\n"
           "track in user units; a frame's FiLM uses the values at its last sample. `sidechain`: float32\n"
           "(channels * sidechain_channels, frames), the key of a keyed model, else None.")
      .def("reset", &NativeHost::reset, py::arg("num_channels") = py::none())
      .def("time_buffers", &NativeHost::time_buffers, py::arg("x"), py::arg("buffer_size"),
           py::arg("warmup_calls") = 20, py::arg("sidechain") = py::none(),
           "Seconds per engine call, timed in C++, streaming x (and its key) in buffers.")
      .def_property(
          "linked", [](const NativeHost& h) { return h.engine().linked(); },
          [](NativeHost& h, bool linked) {
            py::gil_scoped_release release;
            h.engine().set_linked(linked);
          })
      .def("set_control", [](NativeHost& h, const std::string& name, double v) { h.engine().set_control(name, v); })
      .def("get_control", [](const NativeHost& h, const std::string& name) { return h.engine().get_control(name); })
      .def("get_state", &NativeHost::get_state)
      .def("set_state", &NativeHost::set_state, py::arg("state"))
      .def_property_readonly("control_names",
                             [](const NativeHost& h) { return h.per_control<std::string>([](const auto& c) { return c.name; }); })
      .def_property_readonly("control_units",
                             [](const NativeHost& h) { return h.per_control<std::string>([](const auto& c) { return c.unit; }); })
      .def_property_readonly("control_minimum",
                             [](const NativeHost& h) { return h.per_control<double>([](const auto& c) { return c.minimum; }); })
      .def_property_readonly("control_maximum",
                             [](const NativeHost& h) { return h.per_control<double>([](const auto& c) { return c.maximum; }); })
      .def_property_readonly("control_default", [](const NativeHost& h) {
        return h.per_control<double>([](const auto& c) { return c.default_value; });
      })
      .def_property_readonly("control_log_mapping",
                             [](const NativeHost& h) { return h.per_control<bool>([](const auto& c) { return c.log_mapping; }); })
      .def_property_readonly("control_values", &NativeHost::control_values)
      .def_property_readonly("sidechain_channels",
                             [](const NativeHost& h) { return h.engine().model().sidechain_channels(); },
                             "Sidechain (key) channels per audio channel; 0: the model keys from its input.")
      .def_property_readonly("latency_samples", [](const NativeHost& h) { return h.engine().model().latency_samples(); })
      .def_property_readonly("sample_rate", [](const NativeHost& h) { return h.engine().model().sample_rate(); })
      .def_property_readonly("pool_size", [](const NativeHost& h) { return h.engine().model().pool_size(); })
      .def_property_readonly("mode", [](const NativeHost& h) { return h.engine().model().mode(); })
      .def_property_readonly("metadata_json", [](const NativeHost& h) { return h.engine().model().metadata_json(); })
      .def_property_readonly("model_path", &NativeHost::path)
      .def_property_readonly("num_channels", [](const NativeHost& h) { return h.engine().num_channels(); })
      .def_property_readonly("max_block_size", [](const NativeHost& h) { return h.engine().max_block_size(); })
      .def_property_readonly("nonfinite_buffers", [](const NativeHost& h) { return h.engine().nonfinite_buffers(); })
      .def_property_readonly("state_names", [](const NativeHost& h) { return h.engine().model().state_names(); })
      .def("__repr__", [](const NativeHost& h) {
        return "<neuralcomp native Host '" + h.path() + "' mode=" + h.engine().model().mode() +
               " channels=" + std::to_string(h.engine().num_channels()) + ">";
      });
}
