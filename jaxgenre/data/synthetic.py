"""A built-in, offline stand-in for GTZAN: ten synthetic "genres" of music-like clips.

Each class is a recipe — a tempo range, drum patterns on a 16-step grid, a bass style,
a lead timbre (harmonic spectrum, envelope, drive), a harmony layer, scales, note
density, swing and noise — and every clip draws its own tempo, key, melody, pattern
variant, timbre tilt, mix levels and noise from it, deterministically from
(seed, class, index). Classes share timbres on purpose (rock and metal both use driven
guitars, disco and pop bright synths, blues, jazz and country plucked or reedy leads),
so the average spectrum — what mean MFCCs see — overlaps between them, while rhythm,
tempo and note patterns — what a CNN sees in a mel-spectrogram over time — differ.

`variant='hard'` (`config.data.synthetic.variant`) makes a set on which recipes can be
told apart: each clip borrows each ingredient of its recipe (tempo, swing, drums, bass,
lead, harmony, scales, density, drive) from a random other class with probability 0.3,
drops its drums for a few seconds now and then, and goes through its own effects —
a low-pass filter, an echo, noise at 10-30 dB SNR and a random level.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import signal as sp_signal

VERSION = 1  # bump when the synthesis changes: it keys feature caches
VARIANTS = ("standard", "hard")
_INGREDIENTS = ("bpm", "swing", "drums", "bass", "lead", "harmony", "scales", "density", "drive")
_BORROW = 0.3  # hard: the chance that an ingredient comes from another class

CLASS_NAMES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
               "reggae", "rock")

# Scales as semitone steps from the root.
_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10), "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10), "blues": (0, 3, 5, 6, 7, 10),
    "major_pentatonic": (0, 2, 4, 7, 9), "minor_pentatonic": (0, 3, 5, 7, 10),
}

# Drum patterns: 16 steps per bar; letters are hits (k kick, s snare, h closed hat,
# o open hat, r ride, c crash at step 0 only). Several variants per class.
_R = {
    "blues": dict(bpm=(60, 96), swing=0.62, drums=["k...s...k...s...|h.h.h.h.h.h.h.h.",
                                                   "k..k s...k...s...|r.r.r.r.r.r.r.r."],
                  bass="walk", lead=("guitar", "reed"), harmony="none", scales=("blues", "minor_pentatonic"),
                  density=(0.7, 1.6), drive=(1.5, 3.0), noise=(0.002, 0.01)),
    "classical": dict(bpm=(56, 120), swing=0.5, drums=[""], bass="sustain", lead=("strings", "keys"),
                      harmony="pad", scales=("major", "minor"), density=(0.8, 2.5),
                      drive=(1.0, 1.0), noise=(0.0, 0.002)),
    "country": dict(bpm=(92, 132), swing=0.52, drums=["k...s...k...s...|h.h.h.h.h.h.h.h.",
                                                      "k.s.k.s.k.s.k.s.|................"],
                    bass="root_fifth", lead=("pluck", "guitar"), harmony="strum",
                    scales=("major_pentatonic", "major"), density=(1.5, 3.0),
                    drive=(1.0, 1.4), noise=(0.001, 0.006)),
    "disco": dict(bpm=(110, 128), swing=0.5, drums=["k...k...k...k...|..o...o...o...o.|....s.......s...",
                                                    "k...k...k...k...|h.o.h.o.h.o.h.o.|....s.......s..."],
                  bass="octaves", lead=("synth", "strings"), harmony="stabs", scales=("minor", "dorian"),
                  density=(1.5, 2.5), drive=(1.0, 1.3), noise=(0.001, 0.005)),
    "hiphop": dict(bpm=(72, 98), swing=0.56, drums=["k......k..k.....|....s.......s...|h.h.h.h.h.h.h.h.",
                                                    "k.....k...k..k..|....s.......s...|hhhhhhhhhhhhhhhh"],
                   bass="808", lead=("keys", "synth"), harmony="none", scales=("minor", "phrygian"),
                   density=(0.4, 1.2), drive=(1.0, 1.5), noise=(0.004, 0.02)),
    "jazz": dict(bpm=(100, 200), swing=0.66, drums=["....s.......s...|r..rr..rr..rr..r",
                                                    "................|r.rr..r.rr..r..."],
                 bass="walk", lead=("reed", "keys"), harmony="comp", scales=("dorian", "mixolydian"),
                 density=(1.5, 3.5), drive=(1.0, 1.2), noise=(0.002, 0.01)),
    "metal": dict(bpm=(140, 200), swing=0.5, drums=["kkkkkkkkkkkkkkkk|....s.......s...|c...............",
                                                    "kk.kkk.kkk.kkk.k|....s.......s...|h.h.h.h.h.h.h.h."],
                  bass="chug", lead=("guitar",), harmony="power", scales=("phrygian", "minor"),
                  density=(2.0, 4.0), drive=(6.0, 14.0), noise=(0.005, 0.02)),
    "pop": dict(bpm=(95, 125), swing=0.5, drums=["k.....k.k.......|....s.......s...|h.h.h.h.h.h.h.h.",
                                                 "k...k...k...k...|....s.......s...|..h...h...h...h."],
                bass="root_eighths", lead=("synth", "keys", "pluck"), harmony="pad", scales=("major", "major_pentatonic"),
                density=(1.0, 2.2), drive=(1.0, 1.3), noise=(0.001, 0.005)),
    "reggae": dict(bpm=(62, 90), swing=0.55, drums=["........k.......|........s.......|h.h.h.h.h.h.h.h.",
                                                    "k.......k.......|........s.......|..h...h...h...h."],
                   bass="melodic", lead=("keys", "pluck"), harmony="skank", scales=("minor", "major"),
                   density=(0.5, 1.3), drive=(1.0, 1.5), noise=(0.002, 0.01)),
    "rock": dict(bpm=(100, 150), swing=0.5, drums=["k.......k.k.....|....s.......s...|h.h.h.h.h.h.h.h.|c...............",
                                                   "k...k...k...k...|....s.......s...|h.h.h.h.h.h.h.h."],
                 bass="root_eighths", lead=("guitar", "pluck"), harmony="power",
                 scales=("minor_pentatonic", "major"), density=(1.0, 2.5), drive=(3.0, 7.0),
                 noise=(0.003, 0.012)),
}

# Harmonic amplitude profiles (amplitude of harmonic h, h = 1..16) and envelopes.
_TIMBRES = {
    "guitar": (lambda h: 1.0 / h ** 1.1, 0.005, 2.5), "strings": (lambda h: 1.0 / h ** 1.6, 0.12, 0.4),
    "pluck": (lambda h: 1.0 / h ** 0.9, 0.002, 5.0), "synth": (lambda h: (h % 2) / h, 0.01, 1.0),
    "keys": (lambda h: 1.0 / h ** 2.2, 0.003, 3.0), "reed": (lambda h: (0.3 + (h % 2)) / h ** 1.2, 0.03, 0.8),
}
_TABLE = 4096


def _wavetable(profile, tilt: float) -> np.ndarray:
    h = np.arange(1, 17)
    amps = profile(h) * h ** (-tilt)
    x = np.arange(_TABLE) / _TABLE
    table = (amps[:, None] * np.sin(2 * np.pi * h[:, None] * x[None, :])).sum(axis=0)
    return table / np.abs(table).max()


def _tone(table, freq: float, n: int, sr: int, attack: float, decay: float,
          vibrato: float = 0.0) -> np.ndarray:
    t = np.arange(n) / sr
    phase = freq * t
    if vibrato:
        phase = phase + vibrato * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5) * freq
    wave = table[(phase * _TABLE).astype(np.int64) % _TABLE]
    env = np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-decay * t)
    return wave * env * np.minimum(1.0, (n - np.arange(n)) / (0.01 * sr))  # 10 ms release


def _drum(kind: str, sr: int, rng) -> np.ndarray:
    t = np.arange(int(0.35 * sr)) / sr
    if kind == "k":
        return np.sin(2 * np.pi * (45 * t + 80 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 12)
    noise = rng.standard_normal(t.size)
    if kind == "s":
        return 0.6 * np.diff(noise, prepend=0) * np.exp(-t * 25) + 0.4 * np.sin(
            2 * np.pi * 185 * t) * np.exp(-t * 30)
    bright = np.diff(np.diff(noise, prepend=0), prepend=0) * 0.25
    decay = {"h": 60, "o": 9, "r": 14, "c": 4}[kind]
    return bright * np.exp(-t * decay) * (0.5 if kind in "hr" else 0.8)


def _place(track: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    end = min(track.size, start + sound.size)
    if start < end:
        track[start:end] += gain * sound[:end - start]


def _blend(label: int, rng) -> dict:
    """Class `label`'s recipe with each ingredient, with probability _BORROW, another's."""
    recipe = dict(_R[CLASS_NAMES[label]])
    for ingredient in _INGREDIENTS:
        if rng.uniform() < _BORROW:
            other = (label + 1 + rng.integers(len(CLASS_NAMES) - 1)) % len(CLASS_NAMES)
            recipe[ingredient] = _R[CLASS_NAMES[other]][ingredient]
    return recipe


def _effects(mix: np.ndarray, sr: int, rng) -> np.ndarray:
    """hard: a low-pass (half the clips), an echo (half), noise at 10-30 dB SNR."""
    if rng.uniform() < 0.5:
        mix = sp_signal.sosfilt(sp_signal.butter(2, rng.uniform(1000, 6000), fs=sr,
                                                 output="sos"), mix)
    if rng.uniform() < 0.5:
        delay = int(rng.uniform(0.08, 0.4) * sr)
        mix = mix + rng.uniform(0.3, 0.6) * np.concatenate([np.zeros(delay), mix[:-delay]])
    power = np.mean(mix ** 2) + 1e-12
    snr_db = rng.uniform(10, 30)
    return mix + np.sqrt(power / 10 ** (snr_db / 10)) * rng.standard_normal(mix.size)


def generate_clip(label: int, index: int, *, seed: int = 0, seconds: float = 30.0,
                  sr: int = 22050, variant: str = "standard") -> np.ndarray:
    """One clip of class `label`, float32 in [-1, 1]; a pure function of its arguments."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    hard = variant == "hard"
    hard_rng = np.random.default_rng([seed, label, index, 1]) if hard else None
    recipe = _blend(label, hard_rng) if hard else _R[CLASS_NAMES[label]]
    rng = np.random.default_rng([seed, label, index])
    n = int(round(seconds * sr))
    bpm = rng.uniform(*recipe["bpm"])
    step = 60.0 / bpm / 4 * sr  # samples per 16th note
    swing = recipe["swing"]
    steps = int(n / step) + 1
    onset = lambda s: int((s - s % 2 + (2 * swing if s % 2 else 0)) * step)  # swung 16ths

    drums = np.zeros(n)
    pattern = recipe["drums"][rng.integers(len(recipe["drums"]))]
    sounds = {k: _drum(k, sr, rng) for k in "ksohrc"}
    for lane in filter(None, pattern.split("|")):
        for s in range(steps):
            hit = lane[s % 16]
            if hit != "." and hit != " " and (hit != "c" or s % 64 == 0):
                _place(drums, sounds[hit], onset(s), rng.uniform(0.6, 1.0))

    root = 110.0 * 2 ** (rng.integers(12) / 12)  # A2 .. G#3
    scale = np.array(_SCALES[recipe["scales"][rng.integers(len(recipe["scales"]))]])
    degree = lambda d: root * 2 ** ((12 * (d // len(scale)) + scale[d % len(scale)]) / 12)
    instrument = recipe["lead"][rng.integers(len(recipe["lead"]))]
    profile, attack, decay = _TIMBRES[instrument]
    lead_table = _wavetable(profile, rng.uniform(-0.4, 0.4))
    bass_table = _wavetable(lambda h: 1.0 / h ** 3, 0.0)

    memo = {}

    def tone(table, freq, length, attack, decay, vibrato=0.0):  # repeated notes: build once
        key = (id(table), round(freq, 3), length, attack, decay, vibrato)
        if key not in memo:
            memo[key] = _tone(table, freq, length, sr, attack, decay, vibrato)
        return memo[key]

    lead = np.zeros(n)
    notes_per_beat = rng.uniform(*recipe["density"])
    d = rng.integers(7, 11)
    s = 0.0
    while s < steps:
        length = max(1, int(round(rng.choice([1, 2, 2, 4, 4, 8]) / notes_per_beat)))
        d = int(np.clip(d + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 3, 16))
        note_len = int(length * step)
        _place(lead, tone(lead_table, degree(d), note_len, attack, decay,
                           vibrato=0.004 if instrument in ("strings", "reed") else 0.0),
               onset(int(s)), rng.uniform(0.5, 1.0))
        s += length

    bass, harmony = np.zeros(n), np.zeros(n)
    style = recipe["bass"]
    bass_steps = {"walk": 4, "sustain": 16, "root_fifth": 4, "octaves": 2, "808": 8, "chug": 2,
                  "root_eighths": 2, "melodic": 4}[style]
    for s in range(0, steps, bass_steps):
        bar_degree = [0, 3, 4, 0][(s // 16) % 4]
        offset = {"walk": (s // 4) % 4, "root_fifth": 4 * ((s // 4) % 2), "octaves": 7 * ((s // 2) % 2),
                  "melodic": rng.integers(0, 5)}.get(style, 0)
        f = degree(bar_degree + offset) / (4 if style in ("808", "chug") else 2)
        length = int(bass_steps * step * (0.5 if style == "chug" else 0.95))
        _place(bass, tone(bass_table, f, length, 0.005, 1.0 if style == "808" else 3.0),
               onset(s), 1.0)
        kind = recipe["harmony"]
        if kind != "none" and s % 8 == 0:
            chord = [0, 2, 4] if kind != "power" else [0, 4, 7]
            chord = chord + [6] if kind == "comp" else chord
            at = onset(s + 2) if kind == "skank" else onset(s)
            dur = int((1 if kind in ("skank", "stabs") else 8) * step)
            for c in chord:
                _place(harmony, tone(lead_table, degree(bar_degree + c + 7), dur,
                                     0.1 if kind == "pad" else 0.004, 0.5), at, 0.35)
                if kind == "skank":
                    _place(harmony, tone(lead_table, degree(bar_degree + c + 7), dur, 0.004, 0.5),
                           onset(s + 6), 0.35)

    if hard:  # breaks: the drums stop for 2-6 s, up to twice
        for _ in range(hard_rng.integers(0, 3)):
            start = int(hard_rng.uniform(0, max(seconds - 2, 0)) * sr)
            drums[start:start + int(hard_rng.uniform(2, 6) * sr)] = 0.0
    drive = rng.uniform(*recipe["drive"])
    guitars = lead + harmony
    if drive > 1.0:
        guitars = np.tanh(drive * guitars / (np.abs(guitars).max() + 1e-9)) / np.tanh(drive)
    levels = rng.uniform([0.5, 0.4, 0.4], 1.0) * (rng.uniform(size=3) > [0.0, 0.1, 0.1])
    mix = levels[0] * _unit(drums) + levels[1] * _unit(bass) + levels[2] * _unit(guitars)
    mix += rng.uniform(*recipe["noise"]) / 0.01 * 0.03 * rng.standard_normal(n)
    level = rng.uniform(0.3, 0.9)
    if hard:
        mix, level = _effects(mix, sr, hard_rng), hard_rng.uniform(0.05, 0.9)
    return (level * mix / (np.abs(mix).max() + 1e-9)).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    peak = np.abs(x).max()
    return x / peak if peak > 0 else x


def clip_ids(clips_per_class: int) -> Tuple[list, np.ndarray]:
    """The clip ids (`<class>/synthetic.<index>`) and labels of a set, in class order."""
    ids = [f"{CLASS_NAMES[c]}/synthetic.{i:05d}" for c in range(len(CLASS_NAMES))
           for i in range(clips_per_class)]
    return ids, np.repeat(np.arange(len(CLASS_NAMES)), clips_per_class)
