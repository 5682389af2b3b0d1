"""The dataset source signal (neuralcomp/data/source.py): determinism, tone-step levels, music excerpts
from a folder (rates, channels, formats, silence, errors), procedural sections, overall layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neuralcomp.data.source import (
    NoMusicError,
    SourceConfig,
    _resample,
    make_source,
    music_section,
    procedural_section,
    tone_schedule,
    tone_steps,
)
from neuralcomp.errors import NeuralcompError

SR = 44100
CONFIG = SourceConfig()


def _db(x: float) -> float:
    return 20 * np.log10(x)


@pytest.fixture(scope="module")
def sources() -> dict[int, object]:
    return {seed: make_source(SourceConfig(seed=seed), None, allow_synthetic_music=True) for seed in (0, 1)}


# Synthetic "songs": (relative path, rate, channels, seconds, tone Hz). Each song is one amplitude-modulated
# tone so an excerpt's spectrum tells which file it came from.
SONGS = [
    ("a.wav", 44100, 1, 6.0, 300.0),
    ("sub/b.flac", 48000, 2, 5.0, 700.0),
    ("sub/deep/c.wav", 32000, 1, 4.5, 1100.0),
]


def _write_song(path: Path, rate: int, channels: int, seconds: float, freq: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t))
    data = np.stack([mono, 0.5 * mono], axis=1) if channels == 2 else mono
    sf.write(str(path), data, rate)


@pytest.fixture(scope="module")
def music_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("music")
    for name, rate, channels, seconds, freq in SONGS:
        _write_song(root / name, rate, channels, seconds, freq)
    _write_song(root / "short.wav", 44100, 1, 3.9, 500.0)  # too short: skipped
    (root / "notes.txt").write_text("not audio")
    (root / "fake.wav").write_bytes(b"RIFF not really a wav file")
    return root


# ------------------------------------------------------------------------------------------ determinism

def test_same_seed_gives_identical_audio(sources):
    again = make_source(SourceConfig(seed=0), None, allow_synthetic_music=True)
    np.testing.assert_array_equal(again.audio, sources[0].audio)


def test_different_seed_changes_music_and_procedural_but_not_tones(sources):
    a, b = sources[0], sources[1]
    assert [s for s in a.sections] == [s for s in b.sections]
    np.testing.assert_array_equal(a.section("tone_steps"), b.section("tone_steps"))
    for name in ("music", "procedural_dense", "procedural_sparse"):
        assert not np.array_equal(a.section(name), b.section(name)), name


def test_real_music_is_deterministic_per_seed(music_dir):
    m0, f0 = music_section(SourceConfig(seed=0), music_dir)
    m0b, f0b = music_section(SourceConfig(seed=0), music_dir)
    m1, _ = music_section(SourceConfig(seed=1), music_dir)
    np.testing.assert_array_equal(m0, m0b)
    assert f0 == f0b
    assert not np.array_equal(m0, m1)


# ---------------------------------------------------------------------------------------------- tones

def test_tone_step_levels_and_layout():
    x = tone_steps(CONFIG).astype(np.float64)
    schedule = tone_schedule(CONFIG)
    assert len(x) == 16 * SR
    steps = [s for s in schedule if s[0] != -40.0]
    separators = [s for s in schedule if s[0] == -40.0]
    assert [lvl for lvl, _, _ in steps] == [float(v) for v in range(-39, 1)]
    assert len(separators) == 4
    assert all(end - start == SR // 4 for _, start, end in steps)
    assert all(end - start == round(1.5 * SR) for _, start, end in separators)
    # Contiguous: each stretch starts where the previous ended.
    assert schedule[0][1] == 0 and all(p[2] == n[1] for p, n in zip(schedule, schedule[1:]))
    # Groups of ten consecutive steps, each preceded by a separator.
    kinds = ["sep" if lvl == -40.0 else "step" for lvl, _, _ in schedule]
    assert kinds == (["sep"] + ["step"] * 10) * 4
    edge = 2 * SR // 1000
    for level, start, end in schedule:
        measured = _db(np.max(np.abs(x[start + edge:end - edge])))
        assert abs(measured - level) < 0.05, (level, measured)


def test_tone_steps_are_instantaneous():
    x = tone_steps(CONFIG).astype(np.float64)
    _, start, _ = tone_schedule(CONFIG)[-1]  # the -9 -> ... last step is 0 dBFS, after -1 dBFS
    # The envelope changes within one sample: the sample right after the boundary already has the new level.
    t = np.arange(start - 50, start + 50) / SR
    carrier = np.sin(2 * np.pi * 1000.0 * t)
    ratio = x[start - 50:start + 50] / np.where(np.abs(carrier) > 0.1, carrier, np.nan)
    before, after = ratio[:50], ratio[50:]
    np.testing.assert_allclose(before[~np.isnan(before)], 10 ** (-1 / 20), rtol=1e-5)
    np.testing.assert_allclose(after[~np.isnan(after)], 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- music

def test_music_excerpts_from_folder(music_dir):
    audio, files = music_section(CONFIG, music_dir)
    n = 4 * SR
    assert audio.dtype == np.float32 and len(audio) == 10 * n
    assert len(files) == 10
    known = {str(music_dir / name): freq for name, _, _, _, freq in SONGS}
    assert set(files) <= set(known)
    assert len(set(files)) == 3  # all three usable songs are cycled through
    expected_db = np.linspace(0.0, -20.0, 10)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    for i, (path, want_db) in enumerate(zip(files, expected_db)):
        excerpt = audio[i * n:(i + 1) * n].astype(np.float64)
        assert abs(_db(np.max(np.abs(excerpt))) - want_db) < 0.1
        # The excerpt is the listed file's tone at the right pitch (resampled correctly to 44.1 kHz).
        spectrum = np.abs(np.fft.rfft(excerpt * np.hanning(n)))
        assert abs(freqs[np.argmax(spectrum)] - known[path]) < 1.0, (path, freqs[np.argmax(spectrum)])


def test_silent_excerpts_are_rejected(tmp_path):
    _write_song(tmp_path / "tone.wav", 44100, 1, 5.0, 440.0)
    rng = np.random.default_rng(0)
    sf.write(str(tmp_path / "quiet.wav"), rng.standard_normal(10 * SR) * 10 ** (-80 / 20), SR)
    audio, files = music_section(CONFIG, tmp_path)
    assert files == [str(tmp_path / "tone.wav")] * 10
    n = 4 * SR
    peaks = np.linspace(0.0, -20.0, 10)
    for i in range(10):
        excerpt = audio[i * n:(i + 1) * n].astype(np.float64)
        assert _db(np.sqrt(np.mean(excerpt ** 2))) > peaks[i] - 10  # tone RMS, not rescaled noise


def test_only_silent_audio_raises(tmp_path):
    sf.write(str(tmp_path / "quiet.wav"), np.random.default_rng(0).standard_normal(6 * SR) * 1e-4, SR)
    with pytest.raises(NoMusicError, match="-60"):
        music_section(CONFIG, tmp_path)


def test_folder_without_usable_audio_raises(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    _write_song(tmp_path / "clip.wav", 44100, 1, 1.0, 440.0)
    with pytest.raises(NoMusicError) as info:
        music_section(CONFIG, tmp_path)
    assert isinstance(info.value, NeuralcompError)
    message = str(info.value)
    assert str(tmp_path) in message and "clip.wav" in message and "readme.txt" in message


def test_missing_folder_raises(tmp_path):
    with pytest.raises(NoMusicError, match="does not exist"):
        music_section(CONFIG, tmp_path / "nope")


def test_no_music_dir_requires_opt_in():
    with pytest.raises(NoMusicError):
        make_source(CONFIG, None)
    with pytest.raises(NoMusicError):
        music_section(CONFIG, None)


def test_synthetic_music_follows_the_peak_ramp(sources):
    audio = sources[0].section("music").astype(np.float64)
    assert sources[0].music_files == [] and sources[0].synthetic_music
    n = 4 * SR
    for i, want in enumerate(np.linspace(0.0, -20.0, 10)):
        assert abs(_db(np.max(np.abs(audio[i * n:(i + 1) * n]))) - want) < 0.1


def test_resampler_preserves_tone():
    for src in (48000, 32000, 22050):
        t = np.arange(3 * src) / src
        x = 0.7 * np.sin(2 * np.pi * 1000.0 * t + 0.3)
        n_out = 2 * SR
        y = _resample(x, src, SR, n_out, t0=src // 2)  # starts 0.5 s into x: no edge effects
        ty = 0.5 + np.arange(n_out) / SR
        ideal = 0.7 * np.sin(2 * np.pi * 1000.0 * ty + 0.3)
        err_db = _db(np.sqrt(np.mean((y - ideal) ** 2)) / np.sqrt(np.mean(ideal ** 2)))
        assert err_db < -80, (src, err_db)


# ----------------------------------------------------------------------------------------- procedural

def test_procedural_sections():
    dense = procedural_section(CONFIG, dense=True).astype(np.float64)
    sparse = procedural_section(CONFIG, dense=False).astype(np.float64)
    for x in (dense, sparse):
        assert len(x) == 20 * SR
        assert np.all(np.abs(x) <= 1.0) and np.all(np.isfinite(x))
    assert np.mean(dense ** 2) > 4 * np.mean(sparse ** 2)
    window = SR // 10
    dense_rms = np.sqrt(np.mean(dense[: len(dense) // window * window].reshape(-1, window) ** 2, axis=1))
    sparse_rms = np.sqrt(np.mean(sparse.reshape(-1, window) ** 2, axis=1))
    quietest = np.sort(_db(sparse_rms))[:10]
    assert np.all(np.abs(quietest - (-50.0)) < 1.0), quietest
    # Sparse really has gaps: at least a fifth of its windows are at the floor; dense has far fewer.
    assert np.mean(_db(sparse_rms) < -49) > 0.2
    assert np.median(dense_rms) > 10 * np.median(sparse_rms)


# ------------------------------------------------------------------------------------------- together

def test_whole_source_layout(sources, music_dir):
    for src in (sources[0], make_source(CONFIG, music_dir)):
        assert src.audio.dtype == np.float32 and src.audio.ndim == 1
        assert src.sample_rate == SR
        assert not np.any(np.isnan(src.audio)) and np.all(np.abs(src.audio) <= 1.0)
        assert [s.name for s in src.sections] == ["tone_steps", "music", "procedural_dense", "procedural_sparse"]
        assert [s.length for s in src.sections] == [16 * SR, 40 * SR, 20 * SR, 20 * SR]
        assert src.sections[0].start == 0 and src.sections[-1].end == len(src.audio)
        assert all(a.end == b.start for a, b in zip(src.sections, src.sections[1:]))
        assert len(src.audio) == 96 * SR
    real = make_source(CONFIG, music_dir)
    np.testing.assert_array_equal(real.section("procedural_dense"), sources[0].section("procedural_dense"))
    assert len(real.music_files) == 10 and not real.synthetic_music
