// DPF's compile-time description of a neuralcomp plugin. The per-model values (name, URI, IDs) come from
// nc_plugin_identity.h, which `neuralcomp plugin` writes into the build directory for each model.
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED

#include "nc_plugin_identity.h"  // DISTRHO_PLUGIN_NAME, DISTRHO_PLUGIN_URI, DISTRHO_PLUGIN_CLAP_ID, NC_PLUGIN_*

#define DISTRHO_PLUGIN_HAS_UI 0
#define DISTRHO_PLUGIN_IS_RT_SAFE 1
#define DISTRHO_PLUGIN_IS_SYNTH 0
#ifndef NC_PLUGIN_SIDECHAIN
#define NC_PLUGIN_SIDECHAIN 0  // key channels per audio channel of a model keyed by a sidechain
#endif
// 1 (mono) or 2 (stereo) audio inputs, then a keyed model's sidechain inputs (channels x its key channels)
#define DISTRHO_PLUGIN_NUM_INPUTS (NC_PLUGIN_CHANNELS + NC_PLUGIN_CHANNELS * NC_PLUGIN_SIDECHAIN)
#define DISTRHO_PLUGIN_NUM_OUTPUTS NC_PLUGIN_CHANNELS
#define DISTRHO_PLUGIN_WANT_LATENCY 1
#define DISTRHO_PLUGIN_WANT_PROGRAMS 0
#define DISTRHO_PLUGIN_WANT_STATE 0
#define DISTRHO_PLUGIN_LV2_CATEGORY "lv2:CompressorPlugin"
#if NC_PLUGIN_CHANNELS == 1
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx|Dynamics|Mono"
#define DISTRHO_PLUGIN_CLAP_FEATURES "audio-effect", "compressor", "mono"
#else
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx|Dynamics|Stereo"
#define DISTRHO_PLUGIN_CLAP_FEATURES "audio-effect", "compressor", "stereo"
#endif

#endif
