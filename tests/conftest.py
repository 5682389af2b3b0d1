"""Shared fixtures: exported models (built once per session) and the C++ host requirement.

Set NEURALCOMP_REQUIRE_CPP=1 (CI does) to make a missing C++ host a failure instead of a skip.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

from neuralcomp.config import generic_controls, load_preset
from neuralcomp.model import Model, build_model

# Random examples on every run (a failure prints how to reproduce it); no example database on disk.
settings.register_profile("ci", deadline=None, print_blob=True, database=None)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=DeprecationWarning)

# every architecture: SPTMod in both modes, the TCN baseline (causal only), and SPTMod with max frame
# pooling in both modes, with and without FiLM (tiny_release adds the gain-only audio path and chrono init)
CONFIGS = [(preset, mode, controls) for preset in ("sptmod25", "sptmod24") for mode in ("causal", "paper")
           for controls in (0, 7)] + [("tcn", "causal", controls) for controls in (0, 7)] + [
           ("tiny_release", "causal", 7), ("tiny_max", "paper", 0)]


def make_model(preset: str = "sptmod25", mode: str = "causal", controls: int = 7, seed: int = 0) -> Model:
    torch.manual_seed(seed)
    return build_model(load_preset(preset, mode=mode, controls=generic_controls(controls))).eval()


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory):
    """Exported (untrained, seeded) model file for a (preset, mode, controls) key, made on first use."""
    from export import export_model

    root = tmp_path_factory.mktemp("models")
    cache: dict[tuple[str, str, int], tuple[Path, Model]] = {}

    def get(preset: str = "sptmod25", mode: str = "causal", controls: int = 7) -> tuple[Path, Model]:
        key = (preset, mode, controls)
        if key not in cache:
            model = make_model(preset, mode, controls)
            path = export_model(model, root / f"{preset}_{mode}_{controls}.ts", {"test": True})
            cache[key] = (path, model)
        return cache[key]

    return get


def cpp_host_or_skip():
    try:
        from neuralcomp.host import _cpp_host
    except ImportError:
        if os.environ.get("NEURALCOMP_REQUIRE_CPP") == "1":
            pytest.fail("NEURALCOMP_REQUIRE_CPP=1 but the C++ host is not built")
        pytest.skip("C++ host not built (make build)")
    return _cpp_host


def noise(samples: int, channels: int = 1, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """Noise with a level envelope, so the compressor-like model sees loud and quiet passages."""
    rng = np.random.default_rng(seed)
    envelope = np.repeat(rng.uniform(0.05, 1.0, size=samples // 512 + 1), 512)[:samples]
    return (level * envelope * rng.standard_normal((channels, samples))).astype(np.float32)


def _jack_unavailable(reason: str):
    if os.environ.get("NEURALCOMP_REQUIRE_JACK") == "1":
        pytest.fail(f"NEURALCOMP_REQUIRE_JACK=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def jack():
    """A private JACK dummy server (tests/jack.py), with `.device` = its PortAudio device index."""
    from tests.jack import BLOCK, RATE, JackUnavailable, jack_installed, start_jack_server

    if "sounddevice" in sys.modules:
        pytest.fail(
            "sounddevice was imported before the JACK test server started, so PortAudio cannot see the "
            "server: import sounddevice inside functions only (tests and neuralcomp alike)"
        )
    if not jack_installed():
        _jack_unavailable("jackd is not installed (apt-get install jackd2)")
    try:
        server = start_jack_server(rate=RATE, period=BLOCK)
    except JackUnavailable as exc:
        _jack_unavailable(str(exc))
    try:
        try:
            import sounddevice as sd
        except OSError as exc:
            _jack_unavailable(f"PortAudio is missing ({exc}; apt-get install libportaudio2)")
        apis = sd.query_hostapis()
        devices = [d for d in sd.query_devices() if apis[d["hostapi"]]["name"].startswith("JACK")]
        if not devices:
            pytest.fail(f"PortAudio does not see the JACK server {server.name}: {sd.query_devices()}")
        server.device = devices[0]["index"]
        yield server
    finally:
        server.stop()


def native_engine_or_skip():
    """The native engine module; a failure instead of a skip under NEURALCOMP_REQUIRE_CPP=1."""
    try:
        from neuralcomp.host import _native
    except ImportError:
        if os.environ.get("NEURALCOMP_REQUIRE_CPP") == "1":
            pytest.fail("NEURALCOMP_REQUIRE_CPP=1 but the native engine is not built")
        pytest.skip("native engine not built (make build)")
    return _native
