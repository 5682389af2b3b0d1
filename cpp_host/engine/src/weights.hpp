// The engine's in-memory model layout (private). Weights are rearranged at load so that every
// kernel runs over contiguous, zero-padded output lanes (vectorised across channels, never time).
#pragma once

#include <vector>

namespace neuralcomp {

constexpr int kLanes = 8;  // output channels are padded to a multiple of this
inline int padded_lanes(int n) { return (n + kLanes - 1) / kLanes * kLanes; }

struct BlockWeights {
  int in_channels = 0;
  int channels = 0;
  int kernel_size = 0;
  int film_hidden = 0;  // 0: no FiLM (a snapshot model without controls)
  bool modulates_next = false;
  int lanes = 0;                // channels padded to kLanes
  int modulation_channels = 0;  // 2 (audio scale, offset) + 2 * channels when modulating the next block
  int modulation_lanes = 0;
  int hidden = 0;               // LSTM hidden size H
  int gate_lanes = 0;           // 4H padded

  std::vector<float> conv_weight;  // (kernel_size * in_channels, lanes); row tap * in_channels + i
  std::vector<float> conv_bias;    // (lanes,)
  std::vector<float> prelu;        // (lanes,)
  // FiLM MLP, weights transposed (input rows): (n, h), (h,), (h,), (h, h), (h,), (h,), (h, 2c), (2c,)
  std::vector<float> film0_weight, film0_bias, film0_prelu, film1_weight, film1_bias, film1_prelu,
      film2_weight, film2_bias;
  std::vector<float> lstm_weight;        // (channels + H, gate_lanes): rows [frame, h], gates i, f, g, o
  std::vector<float> lstm_bias;          // (gate_lanes,): bias_ih + bias_hh
  std::vector<float> projection_weight;  // (H, modulation_lanes)
  std::vector<float> projection_bias;    // (modulation_lanes,)
  // the exported layouts, kept for state and inspection
  std::vector<float> projection_bias_exact;  // (modulation_channels,)

  // TCN blocks only (conv, FiLM and PReLU above are shared; no LSTM, no projection)
  int dilation = 1;
  int context = 0;                      // (kernel_size - 1) * dilation: input rows the conv looks back
  bool residual_projection = false;     // a 1x1 conv on the residual (in_channels != channels)
  std::vector<float> residual_weight;   // (in_channels, lanes)
  std::vector<float> residual_bias;     // (lanes,)
};

}  // namespace neuralcomp
