"""Plays 2 s of stereo noise into Ardour's track `nc` on the current JACK server, records the track's output,
and compares it with the native engine's output of the same noise (aligned by cross-correlation).

Usage (run by render.lua while Ardour runs): python play_and_compare.py MODEL.ts
"""
import subprocess
import sys
import threading
import time

import numpy as np
import sounddevice as sd

from neuralcomp.host import _native

RATE, BLOCK = 44100, 256
x = (0.3 * np.random.default_rng(21).standard_normal((2, 2 * RATE))).astype(np.float32)
x[1] *= 0.5
played = np.concatenate([x, np.zeros((2, RATE), np.float32)], axis=1).T.copy()
recorded = np.zeros_like(played)
position, go = [0], threading.Event()


def callback(indata, outdata, frames, time_info, status):
    outdata.fill(0)
    if go.is_set():
        p = position[0]
        k = min(frames, len(played) - p)
        if k > 0:
            outdata[:k] = played[p:p + k]
            recorded[p:p + k] = indata[:k]
        position[0] += frames


def ports() -> list[str]:
    return subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.splitlines()


before = set(ports())
with sd.Stream(samplerate=RATE, blocksize=BLOCK, channels=2, dtype="float32", callback=callback):
    now = ports()
    mine = sorted(set(now) - before)
    for a, b in zip([p for p in mine if ":out_" in p], sorted(p for p in now if ":nc/audio_in" in p)):
        subprocess.run(["jack_connect", a, b], check=True)
    for a, b in zip(sorted(p for p in now if ":nc/audio_out" in p), [p for p in mine if ":in_" in p]):
        subprocess.run(["jack_connect", a, b], check=True)
    time.sleep(0.5)
    go.set()
    while position[0] < len(played):
        time.sleep(0.05)
y = recorded.T
expected = _native.Host(sys.argv[1], 2, 4096).process(np.ascontiguousarray(x))
n = x.shape[1]
spectrum = np.fft.rfft(y[0], 2 * y.shape[1]) * np.conj(np.fft.rfft(expected[0], 2 * y.shape[1]))
lag = int(np.argmax(np.fft.irfft(spectrum)[: y.shape[1] - n + 1]))
difference = np.abs(y[:, lag:lag + n] - expected).max(axis=0)
blocks = difference[: n // BLOCK * BLOCK].reshape(-1, BLOCK).max(axis=1)
print(f"through Ardour: lag {lag} samples; per {BLOCK}-sample block, largest |difference| from the engine: "
      f"median {np.median(blocks):.4f}, max {blocks.max():.4f}; blocks within 0.01: {(blocks < 0.01).mean():.0%}; "
      f"engine output peak {np.abs(expected).max():.3f}")
