/* neuralcomp native engine, C API: for plugin frameworks and other languages (no C++ exceptions
 * cross it). Same semantics and threading contract as neuralcomp/engine.hpp:
 *   - nc_engine_process() is the real-time entry point (no allocation, lock or system call);
 *   - nc_engine_set_control() may be called from any thread (atomics; takes effect at the next
 *     pooling frame that finishes after the next process call starts);
 *   - everything else is not real-time and must not run concurrently with process.
 * Functions that can fail return 0 on success and -1 on failure; when an `error` buffer is given,
 * the reason is written there (NUL-terminated, truncated to error_size). */
#ifndef NEURALCOMP_ENGINE_C_H
#define NEURALCOMP_ENGINE_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_model nc_model;   /* immutable weights + metadata, shareable */
typedef struct nc_engine nc_engine; /* one stream: state, scratch, controls */

typedef struct nc_control_info {
  const char* name;    /* valid while the model lives */
  const char* unit;    /* e.g. "dB", "ms", ":1", "" */
  double minimum;
  double maximum;
  double default_value;
  int log_mapping;     /* 1: normalised = log(v/min)/log(max/min); 0: linear */
} nc_control_info;

/* Loading: NULL on failure with the reason in `error` (missing, foreign, corrupt, re-export needed). */
nc_model* nc_model_load_file(const char* path, char* error, size_t error_size);
nc_model* nc_model_load_memory(const void* data, size_t size, char* error, size_t error_size);
void nc_model_free(nc_model* model);

int nc_model_sample_rate(const nc_model* model);
int nc_model_latency_samples(const nc_model* model); /* at the model's rate: 0 causal, P-1 paper */
int nc_model_pool_size(const nc_model* model);
int nc_model_num_controls(const nc_model* model);
/* Sidechain (key) channels per audio channel: S > 0 for a keyed model (process it with
 * nc_engine_process_keyed), 0 for a model that keys from its input. */
int nc_model_sidechain_channels(const nc_model* model);
int nc_model_control_info(const nc_model* model, int index, nc_control_info* info);
const char* nc_model_metadata_json(const nc_model* model);

/* An engine keeps its own reference to the model: the model may be freed after creating engines. */
nc_engine* nc_engine_create(const nc_model* model, int num_channels, int max_block_size, char* error,
                            size_t error_size);
void nc_engine_free(nc_engine* engine);
int nc_engine_prepare(nc_engine* engine, int num_channels, int max_block_size); /* resets */
void nc_engine_reset(nc_engine* engine);
int nc_engine_set_linked(nc_engine* engine, int linked); /* resets */
int nc_engine_set_control(nc_engine* engine, int index, double value); /* user units; -1 if out of range */
double nc_engine_get_control(const nc_engine* engine, int index);
/* REAL-TIME. Planar channel pointers; in place allowed; any num_frames >= 0 (longer than the
 * prepared maximum is split internally, bitwise the same). -1 if num_channels differs from the
 * prepared count. NaN/Inf input: the call's output is zeros, the state goes back to the start state. */
int nc_engine_process(nc_engine* engine, const float* const* input, float* const* output, int num_channels,
                      int num_frames);
/* REAL-TIME. The same for a keyed model: `sidechain` holds sidechain_rows = num_channels * S planar key
 * rows of num_frames samples (rows c*S ... c*S+S-1 key channel c); they feed the modulation path only.
 * An unkeyed model takes NULL and 0 (nc_engine_process is the same call). -1 when the key does not fit
 * the model (missing, present for an unkeyed model, wrong row count): nc_engine_refusal says why. */
int nc_engine_process_keyed(nc_engine* engine, const float* const* input, float* const* output, int num_channels,
                            int num_frames, const float* const* sidechain, int sidechain_rows);
/* Why the last process call returned -1 (valid while the engine lives; "" after an accepted call). */
const char* nc_engine_refusal(const nc_engine* engine);
int64_t nc_engine_nonfinite_buffers(const nc_engine* engine);
/* REAL-TIME. Back to the start state the last reset/prepare/set_linked computed (a copy; counts nothing). */
void nc_engine_restart(nc_engine* engine);

#ifdef __cplusplus
}
#endif

#endif /* NEURALCOMP_ENGINE_C_H */
