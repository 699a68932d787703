"""The feature cache: equal to computing directly, reused, and never stale."""

import os

import numpy as np

from jaxgenre import features
from jaxgenre.data import cache, sources

PARAMS = {"kind": "mel", "sr": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 64,
          "n_mfcc": 20, "fmin": 0.0, "fmax": None, "top_db": 80.0, "ref": 1.0}


def _source(seed=0, clips_per_class=2):
    return sources.open_source("synthetic", clips_per_class=clips_per_class,
                               synthetic_seconds=2.0, clip_seconds=2.0, seed=seed)


def test_cache_equals_direct_computation_and_hits_the_second_time(tmp_path):
    source = _source()
    first = cache.build_features(source, PARAMS, str(tmp_path), batch_size=8, progress=False)
    assert not first.hit and first.features.shape == (20, 64, 87)
    audio = np.stack([source.load(c) for c in source.clips])
    expected = np.asarray(features.melspectrogram_db(audio, n_mels=64))
    np.testing.assert_allclose(np.asarray(first.features), expected, atol=1e-4)
    assert list(first.clip_ids) == [c.clip_id for c in source.clips]
    assert first.labels.tolist() == [c.label for c in source.clips]
    second = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
    assert second.hit and second.path == first.path
    assert isinstance(second.features, np.memmap)
    np.testing.assert_array_equal(np.asarray(second.features), np.asarray(first.features))


def test_a_changed_parameter_clip_list_or_source_misses(tmp_path):
    base = cache.build_features(_source(), PARAMS, str(tmp_path), progress=False)
    changed = [
        cache.build_features(_source(), {**PARAMS, "n_mels": 32}, str(tmp_path), progress=False),
        cache.build_features(_source(), {**PARAMS, "top_db": None}, str(tmp_path), progress=False),
        cache.build_features(_source(), {**PARAMS, "kind": "mfcc"}, str(tmp_path), progress=False),
        cache.build_features(_source(seed=1), PARAMS, str(tmp_path), progress=False),
        cache.build_features(_source(), PARAMS, str(tmp_path), clips=_source().clips[:5],
                             progress=False),
    ]
    assert all(not c.hit for c in changed)
    assert len({base.path} | {c.path for c in changed}) == 6
    assert changed[0].features.shape[1] == 32 and changed[2].features.shape[1] == 20
    assert len(changed[4]) == 5


def test_an_unfinished_entry_is_never_read(tmp_path):
    source = _source()
    key = cache.cache_key(source, PARAMS, source.clips)
    partial = tmp_path / f"mel-{key}.partial-999"
    os.makedirs(partial)
    (partial / "features.npy").write_bytes(b"truncated")
    store = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
    assert not store.hit and store.path == str(tmp_path / f"mel-{key}")
    assert np.isfinite(np.asarray(store.features)).all()


def test_two_processes_building_the_same_entry_both_succeed(tmp_path, monkeypatch):
    """The race of a multi-process run: both miss, both compute; the second to finish
    finds the entry already in place, drops its own copy and reads the winner's."""
    source = _source()
    first = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
    expected = np.asarray(first.features).copy()
    entry_meta = os.path.join(first.path, "meta.json")
    real_isfile, asked = os.path.isfile, []

    def isfile(path):  # the loser looked before the winner had finished: a miss
        if path == entry_meta and not asked:
            asked.append(path)
            return False
        return real_isfile(path)

    monkeypatch.setattr(cache.os.path, "isfile", isfile)
    # ... and any look before its own rename may still miss the winner's entry.
    real_isdir = os.path.isdir
    monkeypatch.setattr(cache.os.path, "isdir",
                        lambda path: False if path == first.path else real_isdir(path))
    second = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
    assert asked and not second.hit and second.path == first.path
    np.testing.assert_array_equal(np.asarray(second.features), expected)
    assert [p for p in os.listdir(tmp_path) if "partial" in p] == []


def test_float16_storage_is_the_float32_features_rounded_and_a_separate_entry(tmp_path):
    from jaxgenre.data import pipeline

    source = _source()
    full = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
    half = cache.build_features(source, PARAMS, str(tmp_path), progress=False, dtype="float16")
    assert half.path != full.path and half.features.dtype == np.float16
    np.testing.assert_array_equal(np.asarray(half.features),
                                  np.asarray(full.features).astype(np.float16))
    assert os.path.getsize(os.path.join(half.path, "features.npy")) < \
        0.51 * os.path.getsize(os.path.join(full.path, "features.npy"))
    segs = pipeline.segments(np.arange(len(half)), half.features.shape[-1], segment_frames=20)
    batch = next(pipeline.iterate_batches(half, segs, batch_size=4, seed=0, epoch=0, train=True))
    assert batch["inputs"].dtype == np.float32  # the model sees float32 either way


def _flip(path, offset_from_end):
    """Flips one byte `offset_from_end` bytes before the end of the file."""
    with open(path, "r+b") as f:
        f.seek(-offset_from_end, os.SEEK_END)
        byte = f.read(1)
        f.seek(-offset_from_end, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))


def _damages():
    """(name, how) pairs: each damages an entry in one way the checks must see."""
    def truncate(path):  # the reproduction: mmap length > file size before
        with open(path / "features.npy", "r+b") as f:
            f.truncate(os.path.getsize(path / "features.npy") // 2)

    def rewrite_meta(path):  # a label changed by hand: the checksum no longer matches
        text = (path / "meta.json").read_text()
        (path / "meta.json").write_text(text.replace('"labels": [0', '"labels": [1', 1))

    return [("truncated features.npy", truncate),
            ("a bit of the last clip", lambda path: _flip(path / "features.npy", 3)),
            ("meta.json edited", rewrite_meta),
            ("meta.json garbage", lambda path: (path / "meta.json").write_bytes(b"{\x00")),
            ("meta.json gone", lambda path: (path / "meta.json").unlink()),
            ("features.npy gone", lambda path: (path / "features.npy").unlink())]


def test_a_damaged_entry_is_computed_again_with_one_warning(tmp_path, capsys):
    source = _source()
    first = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
    expected = np.asarray(first.features).copy()
    assert cache.check_entry(first.path, sample=None) is None
    for name, damage in _damages():
        from pathlib import Path

        damage(Path(first.path))
        assert cache.check_entry(first.path) is not None, name
        capsys.readouterr()
        again = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
        warning = [l for l in capsys.readouterr().err.splitlines() if "WARNING" in l]
        assert len(warning) == 1 and first.path in warning[0] and "computing it again" in \
            warning[0], (name, warning)
        assert not again.hit, name
        np.testing.assert_array_equal(np.asarray(again.features), expected)
        assert cache.build_features(source, PARAMS, str(tmp_path), progress=False).hit
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(first.path)]  # nothing left over


def test_the_sample_is_cheap_and_the_full_check_sees_every_clip(tmp_path):
    source = _source(clips_per_class=5)  # 50 clips: more than the 32 sampled
    store = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
    picked = set(np.random.default_rng(0).choice(50, cache.SAMPLED_CLIPS, replace=False)
                 .tolist()) | {49}
    unsampled = min(set(range(50)) - picked)
    clip_bytes = int(np.prod(store.features.shape[1:])) * 4
    # A flip inside an unsampled clip: the quick check misses it, the full one names it.
    _flip(os.path.join(store.path, "features.npy"), (50 - unsampled) * clip_bytes - 5)
    assert cache.check_entry(store.path) is None
    assert cache.check_entry(store.path, sample=None) == (
        f"clip {unsampled} ({store.clip_ids[unsampled]}) does not match its checksum")


def test_an_entry_from_before_the_checksums_still_opens(tmp_path):
    import json

    source = _source()
    store = cache.build_features(source, PARAMS, str(tmp_path), progress=False)
    meta_path = os.path.join(store.path, "meta.json")
    meta = json.load(open(meta_path))
    for key in ("meta_sha256", "clip_crc32", "npy_bytes", "shape"):
        meta.pop(key)
    json.dump(meta, open(meta_path, "w"))
    assert cache.check_entry(store.path) is None
    assert cache.build_features(source, PARAMS, str(tmp_path), progress=False).hit
