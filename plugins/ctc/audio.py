"""``spoken-digit-strings``: recordings of the Free Spoken Digit Dataset (Jackson et al., 8 kHz
mono WAVs named ``{digit}_{speaker}_{index}.wav``) joined into strings of digits, as log-mel
features computed with ``torch.stft`` (no torchaudio).

Split: the dataset's own convention — recordings with ``index`` 0–4 are test, 5–49 train — so no
recording is heard in both. Each string draws ``min_digits..max_digits`` recordings of its split
and joins them with random pauses of 0..``max_pause_ms`` (plus faint noise, so silence has a
finite log).

Features (the :func:`log_mel` frames): a Hann-windowed STFT (``n_fft`` 256, 25 ms windows, 10 ms
hop), the power spectrum ``|X(f, t)|²`` projected on ``n_mels`` triangular filters equally spaced
on the HTK mel scale ``m(f) = 2595 log10(1 + f / 700)`` from 0 Hz to the Nyquist frequency, then
``log(mel + 1e-6)``; finally each mel bin is standardised with the training strings' mean and
standard deviation (``onnx_feature_mean`` / ``onnx_feature_std`` in the ONNX metadata, so inputs
for ``zoo predict`` can be made the same way). Padding is 0, the standardised mean.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from zoo.core.train.data import Dataset, locate
from zoo.core.train.options import DataOptions, n_field, n_test_field, seed_field
from zoo.core.contract.errors import ZooError
from zoo.plugins.ctc.data import DIGITS, make_split, recognition_info

ROOT = "fsdd/free-spoken-digit-dataset-1.0.9/recordings"
PROBE = f"{ROOT}/0_jackson_0.wav"  # the file `zoo data` declares under `provides`
_NAME = re.compile(r"^([0-9])_([A-Za-z]+)_([0-9]+)\.wav$")


class SpokenDigitOptions(DataOptions):
    """Options of ``spoken-digit-strings``."""

    ordered = (("min_digits", "max_digits"),)
    n: int = n_field(4_000, 1_000_000, "strings")
    n_test: int = n_test_field(500, 100_000, "strings")
    min_digits: int = Field(1, ge=1, le=16, description="Fewest recordings in a string.")
    max_digits: int = Field(5, ge=1, le=16, description="Most recordings in a string.")
    max_pause_ms: int = Field(150, ge=0, le=2_000, description="Longest pause between recordings (ms).")
    n_mels: int = Field(40, ge=4, le=128, description="Mel filters (features per frame).")
    seed: int = seed_field()


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono PCM samples scaled to [-1, 1] and the sample rate; ZooError naming the file otherwise."""
    try:
        with wave.open(str(path), "rb") as fh:
            width, rate, channels = fh.getsampwidth(), fh.getframerate(), fh.getnchannels()
            raw = fh.readframes(fh.getnframes())
    except (wave.Error, EOFError, OSError) as err:
        raise ZooError(f"{path}: not a readable PCM WAV file: {err}") from None
    if width not in (1, 2, 4):
        raise ZooError(f"{path}: {8 * width}-bit samples; 8, 16 or 32-bit PCM expected")
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
    samples = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    if width == 1:
        samples = samples - 128.0
    samples /= float(2 ** (8 * width - 1))
    return samples.reshape(-1, channels).mean(axis=1), rate


def mel_filterbank(n_fft: int, n_mels: int, rate: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """``[n_fft // 2 + 1, n_mels]`` triangular filters on the HTK mel scale (peak 1)."""
    f_max = f_max if f_max is not None else rate / 2

    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    points = 700.0 * (10 ** (np.linspace(mel(f_min), mel(f_max), n_mels + 2) / 2595.0) - 1.0)   # Hz
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)[:, None]                                    # (F, 1)
    lower, centre, upper = points[None, :-2], points[None, 1:-1], points[None, 2:]               # (1, M)
    rising = (freqs - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - freqs) / np.maximum(upper - centre, 1e-9)
    return torch.tensor(np.clip(np.minimum(rising, falling), 0.0, None), dtype=torch.float32)


def log_mel(samples: torch.Tensor, rate: int, n_mels: int = 40, n_fft: int = 256) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel features of a mono signal (see the module docstring)."""
    hop, win = max(1, round(rate * 0.010)), min(n_fft, round(rate * 0.025))
    spec = torch.stft(samples, n_fft, hop_length=hop, win_length=win, window=torch.hann_window(win),
                      center=True, return_complex=True)                                      # (F, T)
    power = spec.real ** 2 + spec.imag ** 2
    bank = mel_filterbank(n_fft, n_mels, rate)                                               # (F, M)
    return torch.log(bank.T @ power + 1e-6)                                                  # (M, T)


def _recordings(folder: Path) -> dict[str, list[list[np.ndarray]]]:
    """``{"train"|"test": [recordings of digit 0, ..., of digit 9]}`` and the sample rate check."""
    pools = {"train": [[] for _ in DIGITS], "test": [[] for _ in DIGITS]}
    rates = set()
    for path in sorted(folder.iterdir()):
        match = _NAME.match(path.name)
        if not match:
            continue
        samples, rate = read_wav(path)
        rates.add(rate)
        split = "test" if int(match.group(3)) < 5 else "train"
        pools[split][int(match.group(1))].append(samples)
    if len(rates) > 1:
        raise ZooError(f"{folder}: recordings at several sample rates {sorted(rates)}")
    for split, pool in pools.items():
        missing = [d for d, recs in enumerate(pool) if not recs]
        if missing:
            raise ZooError(f"{folder}: no {split} recordings (index {'0-4' if split == 'test' else '5+'}) "
                           f"of digit(s) {missing}")
    return {**pools, "rate": rates.pop()}


def _strings(o: SpokenDigitOptions, pool, rate: int, n: int, rng: np.random.Generator):
    features, labels = [], []
    for _ in range(n):
        digits = rng.integers(0, 10, rng.integers(o.min_digits, o.max_digits + 1))
        parts = []
        for i, d in enumerate(digits):
            recs = pool[int(d)]
            parts.append(recs[int(rng.integers(len(recs)))])
            pause = int(rng.integers(0, o.max_pause_ms + 1) * rate / 1000) if i < len(digits) - 1 else 0
            parts.append(np.zeros(pause, dtype=np.float32))
        signal = np.concatenate(parts)
        signal = signal + rng.normal(0.0, 1e-3, signal.shape).astype(np.float32)
        features.append(log_mel(torch.from_numpy(signal), rate, o.n_mels))
        labels.append([int(d) + 1 for d in digits])
    return features, labels


def load_spoken_digit_strings(options: SpokenDigitOptions | None, data_dir) -> Dataset:
    """``spoken-digit-strings``: see the module docstring."""
    o = options or SpokenDigitOptions()
    folder = locate("spoken-digit-strings", [PROBE], data_dir) / ROOT
    pools = _recordings(folder)
    rng = np.random.default_rng(o.seed)
    train_x, train_y = _strings(o, pools["train"], pools["rate"], o.n, rng)
    test_x, test_y = _strings(o, pools["test"], pools["rate"], o.n_test, rng)
    frames = torch.cat(train_x, dim=1)                                     # (M, ΣT)
    mean, std = frames.mean(dim=1, keepdim=True), frames.std(dim=1, keepdim=True).clamp_min(1e-5)
    train = make_split([(f - mean) / std for f in train_x], train_y)
    test = make_split([(f - mean) / std for f in test_x], test_y)
    info = recognition_info(o.n_mels, DIGITS, sample_rate=pools["rate"],
                            onnx_feature_mean=[round(float(v), 6) for v in mean.flatten()],
                            onnx_feature_std=[round(float(v), 6) for v in std.flatten()])
    return Dataset(train=train, test=test, info=info)


