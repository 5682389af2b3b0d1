"""The dataset source signal: ~96 s of mono float32 audio at 44.1 kHz, generated deterministically from a
seed, that is run through a compressor to make input/target training pairs (DESIGN.md section 8, after
Bourdin et al., "TBPTT for neural audio effects").

Recipe, in order (section names as they appear in ``SourceSignal.sections``):

1. ``tone_steps`` (16 s) -- a 1 kHz sine whose peak level steps in 1 dB increments from -39 dBFS to
   0 dBFS, 0.25 s per step, in four groups of ten (-39..-30, -29..-20, -19..-10, -9..0). Each group is
   *preceded* by a 1.5 s stretch of the same sine at -40 dBFS, so the section is
   4 x (1.5 s + 10 x 0.25 s) = 16 s. The paper says "16 s" but its other numbers only give 10 s of
   steps; the 1.5 s separator length is our choice to make the total match. Level in dBFS means sine
   peak = 10 ** (dB / 20). The sine is phase-continuous over the whole section and the level changes are
   instantaneous (no ramps): the step response of the compressor's attack and release is exactly what the
   model has to learn. The tone section does not depend on the seed.

2. ``music`` (40 s) -- ten 4 s excerpts of real music from a user-named folder. Every regular file in the
   folder and its subfolders is probed with soundfile (so wav/flac/ogg/... all work), in sorted path
   order; unreadable files and files shorter than one excerpt are skipped. The usable files are put in a
   seed-dependent random order and cycled through (file ``order[i % n]`` gives excerpt ``i``; with fewer
   than ten files a file gives several excerpts). Each excerpt's start is drawn uniformly from the seed;
   channels are averaged to mono; files at another rate are resampled to 44.1 kHz with the windowed-sinc
   resampler below. An excerpt whose RMS is below -60 dBFS (RMS relative to 1.0) is rejected and another
   start is drawn (up to 10 tries per file, then the next file is tried). Each excerpt is peak-normalised,
   then scaled so its peak is ``music_peak_start_db`` (0 dBFS) for the first excerpt falling linearly in
   dB to ``music_peak_end_db`` (-20 dBFS) for the last. ``SourceSignal.music_files`` lists the file of
   each excerpt, in excerpt order (so a file can appear more than once). No usable audio raises
   :class:`NoMusicError`; ``music_dir=None`` raises it too unless ``allow_synthetic_music=True``, which
   substitutes a synthetic stand-in (decaying harmonic notes on a random tempo grid plus decaying
   noise bursts as "drums"), meant only for tests and offline demos.

3. ``procedural_dense`` and ``procedural_sparse`` (20 s each) -- random events, each one of:
   ADSR-enveloped white noise; a 3-harmonic oscillator (random fundamental 50..2000 Hz, random harmonic
   amplitudes and phases) through a tanh waveshaper with random drive 0.5..10; a linear or exponential
   chirp between two random frequencies in 50 Hz..15 kHz. Envelopes are linear ADSR segments with
   attack 1..100 ms, decay 10..300 ms, sustain level 0.2..1, sustain time 0..0.5 s (dense) or 0..0.3 s
   (sparse), release 10..1000 ms (all uniform). Each event is normalised to a random peak level uniform in
   -40..0 dBFS. Dense: onsets with exponential inter-onset times (mean 120 ms, at least 5 ms), so events
   overlap. Sparse: after each event ends a 0.5..3 s gap follows, over a white Gaussian noise floor with
   RMS -50 dBFS. Both are clipped to [-1, 1] (overlapping loud events make the dense section clip
   about 1% of its samples; that hard clipping is part of the signal).

Randomness: each seeded section draws from its own stream ``np.random.default_rng([seed, k])`` (k = 1
music, 2 dense, 3 sparse), so e.g. swapping the music folder leaves the procedural parts unchanged.

Resampler (``_resample``): a Kaiser-windowed sinc (beta 8.6, 32 zero crossings each side) evaluated at
exact rational phases. Cut-off is 0.9 x the lower of the two Nyquist frequencies (19.8 kHz for
48 kHz -> 44.1 kHz), so aliasing is below about -80 dB; the price is that content above ~0.9 x Nyquist is
attenuated. It is for offline data preparation, not real time, and is not bit-compatible with
``neuralcomp.host.resample``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from neuralcomp.errors import ConfigError, NeuralcompError


DEFAULT_MUSIC_DIR = Path("/usr/share/games/fretsonfire/data/songs")  # Debian: fretsonfire-songs-muldjord


class NoMusicError(NeuralcompError):
    """The music folder is missing or holds no usable audio (or no folder was given)."""


@dataclass(frozen=True)
class SourceConfig:
    """Every knob of the source signal. Defaults give the 96 s recipe in the module docstring."""

    sample_rate: int = 44100
    seed: int = 0
    # Tone steps.
    tone_freq_hz: float = 1000.0
    tone_start_db: float = -39.0
    tone_end_db: float = 0.0
    tone_step_db: float = 1.0
    tone_step_seconds: float = 0.25
    tone_group_size: int = 10
    tone_separator_db: float = -40.0
    tone_separator_seconds: float = 1.5
    # Music.
    music_seconds: float = 40.0
    excerpt_seconds: float = 4.0
    music_peak_start_db: float = 0.0
    music_peak_end_db: float = -20.0
    music_silence_db: float = -60.0
    music_tries_per_file: int = 10
    # Procedural.
    procedural_seconds: float = 20.0
    event_level_db: tuple[float, float] = (-40.0, 0.0)
    attack_seconds: tuple[float, float] = (0.001, 0.1)
    decay_seconds: tuple[float, float] = (0.01, 0.3)
    sustain_level: tuple[float, float] = (0.2, 1.0)
    release_seconds: tuple[float, float] = (0.01, 1.0)
    dense_sustain_seconds: tuple[float, float] = (0.0, 0.5)
    sparse_sustain_seconds: tuple[float, float] = (0.0, 0.3)
    dense_mean_onset_seconds: float = 0.12
    sparse_gap_seconds: tuple[float, float] = (0.5, 3.0)
    noise_floor_db: float = -50.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive, got {self.sample_rate}")
        steps = (self.tone_end_db - self.tone_start_db) / self.tone_step_db + 1
        if self.tone_step_db <= 0 or abs(steps - round(steps)) > 1e-9 or round(steps) % self.tone_group_size:
            raise ConfigError(
                f"tone steps {self.tone_start_db}..{self.tone_end_db} dB by {self.tone_step_db} dB do not split "
                f"into groups of {self.tone_group_size}")
        n = self.music_seconds / self.excerpt_seconds
        if self.excerpt_seconds <= 0 or abs(n - round(n)) > 1e-9 or round(n) < 1:
            raise ConfigError(
                f"music_seconds ({self.music_seconds}) must be a positive multiple of excerpt_seconds "
                f"({self.excerpt_seconds})")
        if self.procedural_seconds <= 0:
            raise ConfigError(f"procedural_seconds must be positive, got {self.procedural_seconds}")

    @property
    def n_excerpts(self) -> int:
        return round(self.music_seconds / self.excerpt_seconds)

    def samples(self, seconds: float) -> int:
        return round(seconds * self.sample_rate)


@dataclass(frozen=True)
class Section:
    """One part of the source: audio[start:end]."""

    name: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class SourceSignal:
    audio: np.ndarray  # float32, mono, shape (n,)
    sample_rate: int
    sections: list[Section]
    music_files: list[str] = field(default_factory=list)  # file of each excerpt, in order; [] if synthetic
    synthetic_music: bool = False

    def section(self, name: str) -> np.ndarray:
        for s in self.sections:
            if s.name == name:
                return self.audio[s.start:s.end]
        raise KeyError(name)


def _db_to_amp(db: float) -> float:
    return 10.0 ** (db / 20.0)


# ----------------------------------------------------------------------------------------------- tones

def tone_schedule(config: SourceConfig) -> list[tuple[float, int, int]]:
    """(level_db, start, end) of every constant-level stretch of the tone section, separators included."""
    n_steps = round((config.tone_end_db - config.tone_start_db) / config.tone_step_db) + 1
    levels = [config.tone_start_db + i * config.tone_step_db for i in range(n_steps)]
    step_n = config.samples(config.tone_step_seconds)
    sep_n = config.samples(config.tone_separator_seconds)
    out: list[tuple[float, int, int]] = []
    pos = 0
    for g in range(0, n_steps, config.tone_group_size):
        out.append((config.tone_separator_db, pos, pos + sep_n))
        pos += sep_n
        for level in levels[g:g + config.tone_group_size]:
            out.append((level, pos, pos + step_n))
            pos += step_n
    return out


def tone_steps(config: SourceConfig) -> np.ndarray:
    """The tone-step section (float32): phase-continuous sine, instantaneous level changes."""
    schedule = tone_schedule(config)
    total = schedule[-1][2]
    envelope = np.empty(total)
    for level, start, end in schedule:
        envelope[start:end] = _db_to_amp(level)
    t = np.arange(total) / config.sample_rate
    return (np.sin(2 * np.pi * config.tone_freq_hz * t) * envelope).astype(np.float32)


# ------------------------------------------------------------------------------------------- resampler

_HALF_ZEROS = 32
_KAISER_BETA = 8.6
_CUTOFF = 0.9


def _kaiser(u: np.ndarray) -> np.ndarray:
    inside = np.abs(u) < 1.0
    arg = np.sqrt(np.clip(1.0 - u * u, 0.0, None))
    return np.where(inside, np.i0(_KAISER_BETA * arg) / np.i0(_KAISER_BETA), 0.0)


def _resample_taps(src_rate: int, dst_rate: int) -> int:
    fc = _CUTOFF * min(1.0, dst_rate / src_rate)
    return math.ceil(_HALF_ZEROS / fc)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """`x` at `src_rate` -> round(len(x) * dst_rate / src_rate) samples at `dst_rate` (windowed sinc)."""
    if src_rate == dst_rate:
        return np.asarray(x)
    return _resample(np.asarray(x, np.float64), src_rate, dst_rate, round(len(x) * dst_rate / src_rate))


def _resample(x: np.ndarray, src_rate: int, dst_rate: int, n_out: int, t0: int = 0) -> np.ndarray:
    """Output sample m of the windowed-sinc interpolation of x at input time t0 + m * src_rate / dst_rate.

    Samples outside x count as zero. Phases are exact (rational), so the filter table has one row per
    distinct phase (at most dst_rate / gcd rows)."""
    ratio = Fraction(src_rate, dst_rate)
    p, q = ratio.numerator, ratio.denominator
    fc = _CUTOFF * min(1.0, dst_rate / src_rate)  # cut-off as a fraction of the input Nyquist
    w = _resample_taps(src_rate, dst_rate)
    offsets = np.arange(-w + 1, w + 1)  # taps at base + offsets
    frac = (np.arange(q) * p % q) / q
    d = frac[:, None] - offsets[None, :]
    table = fc * np.sinc(fc * d) * _kaiser(d / (_HALF_ZEROS / fc))
    xpad = np.concatenate([np.zeros(w), np.asarray(x, dtype=np.float64), np.zeros(w + 1)])
    out = np.empty(n_out)
    chunk = 8192
    for c in range(0, n_out, chunk):
        m = np.arange(c, min(n_out, c + chunk))
        base = t0 + (m * p) // q + w  # index into xpad
        idx = np.clip(base[:, None] + offsets[None, :], 0, len(xpad) - 1)
        out[c:c + len(m)] = np.einsum("ij,ij->i", table[m % q], xpad[idx])
    return out


# ----------------------------------------------------------------------------------------------- music

def _scan_music(music_dir: Path, min_seconds: float) -> list[tuple[Path, object]]:
    if not music_dir.is_dir():
        raise NoMusicError(f"music folder {music_dir} does not exist or is not a folder")
    usable = []
    too_short: list[str] = []
    unreadable: list[str] = []
    files = sorted(p for p in music_dir.rglob("*") if p.is_file())
    for path in files:
        try:
            info = sf.info(str(path))
        except Exception:  # soundfile raises LibsndfileError/RuntimeError/TypeError for non-audio
            unreadable.append(path.name)
            continue
        if info.frames < math.ceil(min_seconds * info.samplerate) or info.frames <= 0:
            too_short.append(path.name)
        else:
            usable.append((path, info))
    if not usable:
        def names(xs: list[str]) -> str:
            return ", ".join(xs[:5]) + (", ..." if len(xs) > 5 else "")
        raise NoMusicError(
            f"no usable music in {music_dir}: found {len(files)} file(s); "
            f"{len(too_short)} audio file(s) shorter than {min_seconds:g} s"
            + (f" ({names(too_short)})" if too_short else "")
            + f"; {len(unreadable)} not readable as audio" + (f" ({names(unreadable)})" if unreadable else ""))
    return usable


def _read_excerpt(path: Path, info, start: int, n_out: int, dst_rate: int) -> np.ndarray:
    """n_out samples at dst_rate, mono, starting at source frame `start`."""
    if info.samplerate == dst_rate:
        data, _ = sf.read(str(path), start=start, frames=n_out, dtype="float64", always_2d=True)
        return data.mean(axis=1)
    span = math.ceil(n_out * info.samplerate / dst_rate)
    w = _resample_taps(info.samplerate, dst_rate)
    lo = max(0, start - w)
    hi = min(info.frames, start + span + w + 1)
    data, _ = sf.read(str(path), start=lo, frames=hi - lo, dtype="float64", always_2d=True)
    return _resample(data.mean(axis=1), info.samplerate, dst_rate, n_out, t0=start - lo)


def _excerpt_gains(config: SourceConfig) -> np.ndarray:
    return np.linspace(config.music_peak_start_db, config.music_peak_end_db, config.n_excerpts)


def _synthetic_excerpt(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Stand-in for a music excerpt: decaying harmonic notes on a tempo grid plus noise-burst drums."""
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(90, 150)
    t_note = 0.0
    while t_note < n / sr:
        start = int(t_note * sr)
        length = min(n - start, int(rng.uniform(0.5, 2.0) * beat * sr) + 1)
        t = np.arange(length) / sr
        f0 = 440.0 * 2 ** ((rng.integers(40, 77) - 69) / 12)
        note = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
                   for k in range(1, 6) if k * f0 < sr / 2.2)
        env = np.minimum(t / 0.005, 1.0) * np.exp(-t / rng.uniform(0.2, 0.8))
        out[start:start + length] += note * env * rng.uniform(0.3, 1.0)
        t_note += beat * rng.choice([0.5, 1.0, 1.0, 2.0])
    for i in range(int(n / sr / (beat / 2)) + 1):
        start = int(i * beat / 2 * sr)
        if start >= n:
            break
        length = min(n - start, int(0.3 * sr))
        t = np.arange(length) / sr
        accent = 1.0 if i % 2 == 0 else rng.uniform(0.2, 0.6)
        out[start:start + length] += rng.standard_normal(length) * np.exp(-t / rng.uniform(0.02, 0.08)) * accent
    return out


def music_section(config: SourceConfig, music_dir: Path | None,
                  allow_synthetic_music: bool = False) -> tuple[np.ndarray, list[str]]:
    """The music section (float32) and the file of each excerpt (empty for the synthetic stand-in)."""
    rng = np.random.default_rng([config.seed, 1])
    sr = config.sample_rate
    n = config.samples(config.excerpt_seconds)
    gains = _excerpt_gains(config)
    excerpts: list[np.ndarray] = []
    used: list[str] = []
    if music_dir is None:
        if not allow_synthetic_music:
            raise NoMusicError("no music folder given (music_dir=None); pass a folder of audio files, or "
                               "allow_synthetic_music=True for tests and demos only")
        excerpts = [_synthetic_excerpt(rng, n, sr) for _ in gains]
    else:
        music_dir = Path(music_dir)
        usable = _scan_music(music_dir, config.excerpt_seconds)
        order = [usable[i] for i in rng.permutation(len(usable))]
        silence = _db_to_amp(config.music_silence_db)
        for i in range(config.n_excerpts):
            excerpt = None
            for j in range(len(order)):
                path, info = order[(i + j) % len(order)]
                span = n if info.samplerate == sr else math.ceil(n * info.samplerate / sr)
                for _ in range(config.music_tries_per_file):
                    start = int(rng.integers(0, info.frames - span + 1))
                    candidate = _read_excerpt(path, info, start, n, sr)
                    if np.sqrt(np.mean(candidate ** 2)) >= silence:
                        excerpt = candidate
                        break
                if excerpt is not None:
                    used.append(str(path))
                    break
            if excerpt is None:
                raise NoMusicError(f"no usable music in {music_dir}: every excerpt tried from the "
                                   f"{len(order)} audio file(s) was below {config.music_silence_db:g} dBFS RMS")
            excerpts.append(excerpt)
    scaled = [e / np.max(np.abs(e)) * _db_to_amp(g) for e, g in zip(excerpts, gains)]
    return np.concatenate(scaled).astype(np.float32), used


# ------------------------------------------------------------------------------------------ procedural

def _adsr(rng: np.random.Generator, config: SourceConfig, sustain_range: tuple[float, float]) -> np.ndarray:
    sr = config.sample_rate
    a = max(1, int(rng.uniform(*config.attack_seconds) * sr))
    d = max(1, int(rng.uniform(*config.decay_seconds) * sr))
    s_level = rng.uniform(*config.sustain_level)
    s = int(rng.uniform(*sustain_range) * sr)
    r = max(1, int(rng.uniform(*config.release_seconds) * sr))
    return np.concatenate([
        np.linspace(0.0, 1.0, a, endpoint=False),
        np.linspace(1.0, s_level, d, endpoint=False),
        np.full(s, s_level),
        np.linspace(s_level, 0.0, r),
    ])


def _event(rng: np.random.Generator, config: SourceConfig, sustain_range: tuple[float, float]) -> np.ndarray:
    sr = config.sample_rate
    env = _adsr(rng, config, sustain_range)
    n = len(env)
    t = np.arange(n) / sr
    kind = rng.integers(0, 3)
    if kind == 0:  # white noise
        x = rng.standard_normal(n)
    elif kind == 1:  # 3-harmonic oscillator through a tanh waveshaper
        f0 = math.exp(rng.uniform(math.log(50.0), math.log(2000.0)))
        amps = np.concatenate([[1.0], rng.uniform(0.0, 1.0, 2)])
        phases = rng.uniform(0, 2 * np.pi, 3)
        x = sum(amps[k] * np.sin(2 * np.pi * (k + 1) * f0 * t + phases[k]) for k in range(3))
        drive = math.exp(rng.uniform(math.log(0.5), math.log(10.0)))
        x = np.tanh(drive * x / np.max(np.abs(x)))
    else:  # chirp, linear or exponential
        f_lo, f_hi = np.exp(rng.uniform(math.log(50.0), math.log(15000.0), 2))
        duration = n / sr
        if rng.random() < 0.5:
            phase = 2 * np.pi * (f_lo * t + (f_hi - f_lo) * t ** 2 / (2 * duration))
        else:
            k = math.log(f_hi / f_lo) / duration
            phase = 2 * np.pi * f_lo * ((np.exp(k * t) - 1) / k if abs(k) > 1e-12 else t)
        x = np.sin(phase + rng.uniform(0, 2 * np.pi))
    y = x * env
    peak = np.max(np.abs(y))
    level = _db_to_amp(rng.uniform(*config.event_level_db))
    return y * (level / peak) if peak > 0 else y


def procedural_section(config: SourceConfig, dense: bool) -> np.ndarray:
    """A procedural section (float32): dense overlapping events, or sparse events over a noise floor."""
    rng = np.random.default_rng([config.seed, 2 if dense else 3])
    sr = config.sample_rate
    total = config.samples(config.procedural_seconds)
    out = np.zeros(total)
    if not dense:
        out += rng.standard_normal(total) * _db_to_amp(config.noise_floor_db)
    pos = 0 if dense else int(rng.uniform(*config.sparse_gap_seconds) * sr)
    while pos < total:
        event = _event(rng, config, config.dense_sustain_seconds if dense else config.sparse_sustain_seconds)
        end = min(total, pos + len(event))
        out[pos:end] += event[:end - pos]
        if dense:
            pos += max(int(0.005 * sr), int(rng.exponential(config.dense_mean_onset_seconds) * sr))
        else:
            pos += len(event) + int(rng.uniform(*config.sparse_gap_seconds) * sr)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------- together

def make_source(config: SourceConfig, music_dir: Path | None, allow_synthetic_music: bool = False) -> SourceSignal:
    """The whole source signal: tone steps, music, dense procedural, sparse procedural, back to back."""
    music, files = music_section(config, music_dir, allow_synthetic_music)
    parts = [
        ("tone_steps", tone_steps(config)),
        ("music", music),
        ("procedural_dense", procedural_section(config, dense=True)),
        ("procedural_sparse", procedural_section(config, dense=False)),
    ]
    sections = []
    pos = 0
    for name, audio in parts:
        sections.append(Section(name, pos, pos + len(audio)))
        pos += len(audio)
    audio = np.concatenate([a for _, a in parts]).astype(np.float32)
    return SourceSignal(audio=audio, sample_rate=config.sample_rate, sections=sections, music_files=files,
                        synthetic_music=music_dir is None)
