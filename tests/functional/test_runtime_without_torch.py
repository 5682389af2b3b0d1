"""Inference needs no torch: in a fresh virtual environment holding only the declared runtime
dependencies, the native engine loads the shipped model, processes audio and runs the CLI."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import native_engine_or_skip

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "presets" / "trained" / "zamcomp_tiny.ts"

_SCRIPT = """
import sys, numpy as np, neuralcomp
comp = neuralcomp.load(sys.argv[1])
comp.threshold = -30.0
y = comp.process(np.full((2, 4410), 0.5, np.float32), 44100, buffer_size=64)
assert comp.backend == "native" and y.shape == (2, 4410) and np.isfinite(y).all()
assert "torch" not in sys.modules
print("ok", float(np.abs(y).max()))
"""


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory):
    native_engine_or_skip()
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(d.startswith("torch") for d in dependencies)
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", *dependencies], check=True)
    return venv


def _run(venv: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([str(venv / "bin" / "python"), *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_torch_is_not_installed_there(runtime_venv):
    assert _run(runtime_venv, "-c", "import torch").returncode != 0


def test_load_and_process_without_torch(runtime_venv):
    result = _run(runtime_venv, "-c", _SCRIPT, str(SHIPPED))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_cli_process_without_torch(runtime_venv, tmp_path):
    source = tmp_path / "in.wav"
    sf.write(source, (0.3 * np.sin(np.arange(22050) * 0.06)).astype(np.float32), 44100, subtype="FLOAT")
    out = tmp_path / "out.wav"
    result = _run(runtime_venv, "-m", "neuralcomp.cli", "process", str(SHIPPED), str(source), str(out),
                  "--control", "threshold=-30")
    assert result.returncode == 0, result.stderr
    assert sf.info(out).frames == 22050
