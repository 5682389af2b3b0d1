// The C API over the engine (engine_c.h): exceptions become -1 / NULL plus a message.
#include "neuralcomp/engine_c.h"

#include <cstring>
#include <string>

#include "neuralcomp/engine.hpp"

struct nc_model {
  std::shared_ptr<const neuralcomp::Model> model;
};
struct nc_engine {
  std::unique_ptr<neuralcomp::Engine> engine;
};

namespace {
void write_error(char* error, size_t error_size, const char* message) {
  if (error == nullptr || error_size == 0) return;
  std::strncpy(error, message, error_size - 1);
  error[error_size - 1] = '\0';
}
}  // namespace

extern "C" {

nc_model* nc_model_load_file(const char* path, char* error, size_t error_size) {
  try {
    if (path == nullptr) throw neuralcomp::ModelFileError("no path given");
    return new nc_model{neuralcomp::Model::load_file(path)};
  } catch (const std::exception& e) {
    write_error(error, error_size, e.what());
    return nullptr;
  }
}

nc_model* nc_model_load_memory(const void* data, size_t size, char* error, size_t error_size) {
  try {
    return new nc_model{neuralcomp::Model::load_memory(data, size, "embedded model")};
  } catch (const std::exception& e) {
    write_error(error, error_size, e.what());
    return nullptr;
  }
}

void nc_model_free(nc_model* model) { delete model; }
int nc_model_sample_rate(const nc_model* model) { return model ? model->model->sample_rate() : 0; }
int nc_model_latency_samples(const nc_model* model) { return model ? model->model->latency_samples() : 0; }
int nc_model_pool_size(const nc_model* model) { return model ? model->model->pool_size() : 0; }
int nc_model_num_controls(const nc_model* model) { return model ? model->model->num_controls() : 0; }
int nc_model_sidechain_channels(const nc_model* model) { return model ? model->model->sidechain_channels() : 0; }
const char* nc_model_metadata_json(const nc_model* model) { return model ? model->model->metadata_json().c_str() : ""; }

int nc_model_control_info(const nc_model* model, int index, nc_control_info* info) {
  if (model == nullptr || info == nullptr || index < 0 || index >= model->model->num_controls()) return -1;
  const neuralcomp::ControlInfo& c = model->model->controls()[index];
  info->name = c.name.c_str();
  info->unit = c.unit.c_str();
  info->minimum = c.minimum;
  info->maximum = c.maximum;
  info->default_value = c.default_value;
  info->log_mapping = c.log_mapping ? 1 : 0;
  return 0;
}

nc_engine* nc_engine_create(const nc_model* model, int num_channels, int max_block_size, char* error,
                            size_t error_size) {
  try {
    if (model == nullptr) throw std::invalid_argument("no model given");
    return new nc_engine{std::make_unique<neuralcomp::Engine>(model->model, num_channels, max_block_size)};
  } catch (const std::exception& e) {
    write_error(error, error_size, e.what());
    return nullptr;
  }
}

void nc_engine_free(nc_engine* engine) { delete engine; }

int nc_engine_prepare(nc_engine* engine, int num_channels, int max_block_size) {
  if (engine == nullptr) return -1;
  try {
    engine->engine->prepare(num_channels, max_block_size);
    return 0;
  } catch (const std::exception&) {
    return -1;
  }
}

void nc_engine_restart(nc_engine* engine) {
  if (engine) engine->engine->restart();
}

void nc_engine_reset(nc_engine* engine) {
  if (engine) engine->engine->reset();
}

int nc_engine_set_linked(nc_engine* engine, int linked) {
  if (engine == nullptr) return -1;
  try {
    engine->engine->set_linked(linked != 0);
    return 0;
  } catch (const std::exception&) {
    return -1;
  }
}

int nc_engine_set_control(nc_engine* engine, int index, double value) {
  if (engine == nullptr) return -1;
  try {
    engine->engine->set_control(index, value);
    return 0;
  } catch (const std::exception&) {
    return -1;
  }
}

double nc_engine_get_control(const nc_engine* engine, int index) {
  if (engine == nullptr || index < 0 || index >= engine->engine->model().num_controls()) return 0.0;
  return engine->engine->get_control(index);
}

int nc_engine_process(nc_engine* engine, const float* const* input, float* const* output, int num_channels,
                      int num_frames) {
  if (engine == nullptr) return -1;
  return engine->engine->process(input, output, num_channels, num_frames) ? 0 : -1;
}

int nc_engine_process_keyed(nc_engine* engine, const float* const* input, float* const* output, int num_channels,
                            int num_frames, const float* const* sidechain, int sidechain_rows) {
  if (engine == nullptr) return -1;
  return engine->engine->process(input, output, num_channels, num_frames, sidechain, sidechain_rows) ? 0 : -1;
}

const char* nc_engine_refusal(const nc_engine* engine) { return engine ? engine->engine->refusal() : "no engine"; }

int64_t nc_engine_nonfinite_buffers(const nc_engine* engine) {
  return engine ? engine->engine->nonfinite_buffers() : 0;
}

}  // extern "C"
