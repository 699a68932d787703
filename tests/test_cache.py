"""The feature cache: equal to computing directly, reused, and never stale."""

import os

import numpy as np
import pytest

from jaxgenre import features
from jaxgenre.data import cache, sources
from jaxgenre.errors import UserError

PARAMS = {"kind": "mel", "sr": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 64,
          "n_mfcc": 20, "fmin": 0.0, "fmax": None, "top_db": 80.0, "ref": 1.0}
spec = features.FeatureSpec.from_config
SPEC = spec(PARAMS)


def _source(seed=0, clips_per_class=2):
    return sources.open_source("synthetic", clips_per_class=clips_per_class,
                               synthetic_seconds=2.0, clip_seconds=2.0, seed=seed)


def test_cache_equals_direct_computation_and_hits_the_second_time(tmp_path):
    source = _source()
    first = cache.build_features(source, SPEC, str(tmp_path), batch_size=8, progress=False)
    assert not first.hit and first.features.shape == (20, 64, 87)
    audio = np.stack([source.load(c) for c in source.clips])
    expected = np.asarray(features.melspectrogram_db(audio, n_mels=64))
    np.testing.assert_allclose(np.asarray(first.features), expected, atol=1e-4)
    assert list(first.clip_ids) == [c.clip_id for c in source.clips]
    assert first.labels.tolist() == [c.label for c in source.clips]
    second = cache.build_features(source, SPEC, str(tmp_path), progress=False)
    assert second.hit and second.path == first.path
    assert isinstance(second.features, np.memmap)
    np.testing.assert_array_equal(np.asarray(second.features), np.asarray(first.features))


def test_a_changed_parameter_clip_list_or_source_misses(tmp_path):
    base = cache.build_features(_source(), SPEC, str(tmp_path), progress=False)
    changed = [
        cache.build_features(_source(), spec({**PARAMS, "n_mels": 32}), str(tmp_path), progress=False),
        cache.build_features(_source(), spec({**PARAMS, "top_db": None}), str(tmp_path), progress=False),
        cache.build_features(_source(), spec({**PARAMS, "kind": "mfcc"}), str(tmp_path), progress=False),
        cache.build_features(_source(seed=1), SPEC, str(tmp_path), progress=False),
        cache.build_features(_source(), SPEC, str(tmp_path), clips=_source().clips[:5],
                             progress=False),
    ]
    assert all(not c.hit for c in changed)
    assert len({base.path} | {c.path for c in changed}) == 6
    assert changed[0].features.shape[1] == 32 and changed[2].features.shape[1] == 20
    assert len(changed[4]) == 5


def test_an_unfinished_entry_is_never_read(tmp_path):
    source = _source()
    key = cache.cache_key(source, SPEC.identity(), source.clips)
    partial = tmp_path / f"mel-{key}.partial-999"
    os.makedirs(partial)
    (partial / "features.npy").write_bytes(b"truncated")
    store = cache.build_features(source, SPEC, str(tmp_path), progress=False)
    assert not store.hit and store.path == str(tmp_path / f"mel-{key}")
    assert np.isfinite(np.asarray(store.features)).all()


def test_two_processes_building_the_same_entry_both_succeed(tmp_path, monkeypatch):
    """The race of a multi-process run: both miss, both compute; the second to finish
    finds the entry already in place, drops its own copy and reads the winner's."""
    source = _source()
    first = cache.build_features(source, SPEC, str(tmp_path), progress=False)
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
    second = cache.build_features(source, SPEC, str(tmp_path), progress=False)
    assert asked and not second.hit and second.path == first.path
    np.testing.assert_array_equal(np.asarray(second.features), expected)
    assert [p for p in os.listdir(tmp_path) if "partial" in p] == []


def test_float16_storage_is_the_float32_features_rounded_and_a_separate_entry(tmp_path):
    from jaxgenre.data import pipeline

    source = _source()
    full = cache.build_features(source, SPEC, str(tmp_path), progress=False)
    half = cache.build_features(source, SPEC, str(tmp_path), progress=False, dtype="float16")
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
    first = cache.build_features(source, SPEC, str(tmp_path), progress=False)
    expected = np.asarray(first.features).copy()
    assert cache.check_entry(first.path, sample=None) is None
    for name, damage in _damages():
        from pathlib import Path

        damage(Path(first.path))
        assert cache.check_entry(first.path) is not None, name
        capsys.readouterr()
        again = cache.build_features(source, SPEC, str(tmp_path), progress=False)
        warning = [l for l in capsys.readouterr().err.splitlines() if "WARNING" in l]
        assert len(warning) == 1 and first.path in warning[0] and "computing it again" in \
            warning[0], (name, warning)
        assert not again.hit, name
        np.testing.assert_array_equal(np.asarray(again.features), expected)
        assert cache.build_features(source, SPEC, str(tmp_path), progress=False).hit
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(first.path)]  # nothing left over


def test_the_sample_is_cheap_and_the_full_check_sees_every_clip(tmp_path):
    source = _source(clips_per_class=5)  # 50 clips: more than the 32 sampled
    store = cache.build_features(source, SPEC, str(tmp_path), progress=False)
    picked = set(np.random.default_rng(0).choice(50, cache.SAMPLED_CLIPS, replace=False)
                 .tolist()) | {49}
    unsampled = min(set(range(50)) - picked)
    clip_bytes = int(np.prod(store.features.shape[1:])) * 4
    # A flip inside an unsampled clip: the quick check misses it, the full one names it.
    _flip(os.path.join(store.path, "features.npy"), (50 - unsampled) * clip_bytes - 5)
    assert cache.check_entry(store.path) is None
    assert cache.check_entry(store.path, sample=None) == (
        f"clip {unsampled} ({store.clip_ids[unsampled]}) does not match its checksum")


# --- issue 21 item 3: never stale, never another config's -------------------------------

def _tone_folder(root, seconds=2.0):
    """<root>/<class>/<class>.0000N.wav: 2 classes x 2 tones, 16-bit PCM at 22050 Hz."""
    import soundfile as sf

    for c, name in enumerate(("blues", "jazz")):
        os.makedirs(root / name)
        for i in range(2):
            t = np.arange(int(seconds * 22050)) / 22050
            y = 0.3 * np.sin(2 * np.pi * 110.0 * (c + 1) * (i + 2) * t)
            sf.write(str(root / name / f"{name}.{i:05d}.wav"), y.astype(np.float32), 22050,
                     subtype="PCM_16")
    return str(root)


def _folder_source(root):
    return sources.open_source("folder", root=root, min_seconds=1.0, clip_seconds=2.0,
                               progress=False)


def _warnings(capsys):
    return [l for l in capsys.readouterr().err.splitlines() if "WARNING" in l]


def test_an_overwritten_clip_file_is_never_served_from_the_cache(tmp_path, capsys):
    """The issue's reproduction: the same folder, one file overwritten with other audio
    (a different size; then the same size with only mtime_ns telling): no hit, and the
    features are those of the new audio, computed from scratch with soundfile."""
    import soundfile as sf

    root = _tone_folder(tmp_path / "data")
    cache_dir = str(tmp_path / "cache")
    first = cache.build_features(_folder_source(root), SPEC, cache_dir, progress=False)
    assert cache.build_features(_folder_source(root), SPEC, cache_dir, progress=False).hit
    target = tmp_path / "data" / "blues" / "blues.00000.wav"
    row = list(first.clip_ids).index("blues/blues.00000")
    old = np.asarray(first.features[row]).copy()
    t = np.arange(2 * 22050) / 22050
    for how, freq, subtype in (("other size", 1234.0, "PCM_24"), ("same size", 777.0, "PCM_24")):
        before = os.stat(target)
        sf.write(str(target), (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 22050,
                 subtype=subtype)
        if how == "same size":
            assert os.path.getsize(target) == before.st_size
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
        capsys.readouterr()
        again = cache.build_features(_folder_source(root), SPEC, cache_dir, progress=False)
        assert not again.hit, how
        assert len(_warnings(capsys)) == 1, how
        audio, sr = sf.read(str(target), dtype="float32")
        expected = np.asarray(features.melspectrogram_db(audio[None], sr=sr, n_mels=64))[0]
        np.testing.assert_allclose(np.asarray(again.features[row]), expected, atol=1e-4)
        assert np.abs(np.asarray(again.features[row]) - old).max() > 1.0, how
        assert cache.build_features(_folder_source(root), SPEC, cache_dir,
                                    progress=False).hit, how


def _copy_entry_under(src_path, dst_path):
    import shutil

    shutil.rmtree(dst_path, ignore_errors=True)
    shutil.copytree(src_path, dst_path)


def test_an_entry_of_another_request_copied_under_this_key_is_not_served(tmp_path, capsys):
    """meta.json is whole and its checksums hold, but it answers another request: other
    params (n_mels=32), another source (seed 1), the same clips in another order."""
    source = _source()
    want = cache.build_features(source, SPEC, str(tmp_path / "ref"), progress=False)
    expected = np.asarray(want.features).copy()
    others = {
        "params": cache.build_features(source, spec({**PARAMS, "n_mels": 32}), str(tmp_path / "o"),
                                       progress=False),
        "source": cache.build_features(_source(seed=1), SPEC, str(tmp_path / "o"),
                                       progress=False),
        "clip_ids": cache.build_features(source, SPEC, str(tmp_path / "o"),
                                         clips=source.clips[::-1], progress=False),
    }
    key_path = tmp_path / "c" / os.path.basename(want.path)
    for name, other in others.items():
        _copy_entry_under(other.path, key_path)
        capsys.readouterr()
        store = cache.build_features(source, SPEC, str(tmp_path / "c"), progress=False)
        assert not store.hit and len(_warnings(capsys)) == 1, name
        np.testing.assert_array_equal(np.asarray(store.features), expected)
        _copy_entry_under(other.path, key_path)  # the warning names what differs
        problem = cache.check_entry(str(key_path), expected=cache.request_meta(
            source, SPEC, source.clips))
        assert problem is not None and name in problem, (name, problem)


def _digest(meta):
    """meta.json's own SHA-256, as the cache documents it (computed here, not by it)."""
    import hashlib
    import json

    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def test_a_meta_json_of_the_wrong_shape_or_without_checksums_is_computed_again(tmp_path,
                                                                                capsys):
    import json

    source = _source()
    first = cache.build_features(source, SPEC, str(tmp_path), progress=False)
    expected = np.asarray(first.features).copy()
    meta_path = os.path.join(first.path, "meta.json")
    good = json.load(open(meta_path))

    def resealed(**changes):
        meta = {**good, **changes}
        return {**meta, "meta_sha256": _digest(meta)}

    def without(*keys):
        return {k: v for k, v in good.items() if k not in keys}

    bad = {"a list": [], "a number": 3, "clip_ids null": {"clip_ids": None},
           "clip_ids null, resealed": resealed(clip_ids=None),
           "short labels, resealed": resealed(labels=good["labels"][:-1]),
           "short clip_crc32, resealed": resealed(clip_crc32=good["clip_crc32"][:3]),
           "crc of text, resealed": resealed(clip_crc32=["x"] * len(good["clip_crc32"])),
           "shape of text, resealed": resealed(shape="20x64x87"),
           "no checksums": without("meta_sha256", "clip_crc32", "npy_bytes", "shape"),
           "no clip_crc32": without("clip_crc32"), "no meta_sha256": without("meta_sha256")}
    for name, meta in bad.items():
        json.dump(meta, open(meta_path, "w"))
        assert cache.check_entry(first.path) is not None, name
        capsys.readouterr()
        again = cache.build_features(source, SPEC, str(tmp_path), progress=False)
        warning = _warnings(capsys)
        assert len(warning) == 1 and first.path in warning[0], (name, warning)
        assert not again.hit, name
        np.testing.assert_array_equal(np.asarray(again.features), expected)
        assert json.load(open(meta_path)) == good, name  # rewritten whole


def test_the_loser_of_a_race_does_not_read_a_stale_winner(tmp_path, monkeypatch):
    """Both missed; the entry that lands first, while this one computes, is another
    request's (here the n_mels=32 one): the loser checks it, sets it aside and puts its
    own in place, instead of serving 32 mel bands for 64."""
    source = _source()
    other = cache.build_features(source, spec({**PARAMS, "n_mels": 32}), str(tmp_path / "o"),
                                 progress=False)
    entry = tmp_path / "c" / f"mel-{cache.cache_key(source, SPEC.identity(), source.clips)}"
    real_replace, landed = os.replace, []

    def replace(src, dst):  # the other process renames its entry in just before us
        if str(dst) == str(entry) and not landed:
            landed.append(dst)
            _copy_entry_under(other.path, entry)
        return real_replace(src, dst)

    monkeypatch.setattr(cache.os, "replace", replace)
    store = cache.build_features(source, SPEC, str(tmp_path / "c"), progress=False)
    monkeypatch.undo()
    assert landed and not store.hit and store.features.shape == (20, 64, 87)
    expected = cache.build_features(source, SPEC, str(tmp_path / "ref"), progress=False)
    np.testing.assert_array_equal(np.asarray(store.features), np.asarray(expected.features))
    assert cache.build_features(source, SPEC, str(tmp_path / "c"), progress=False).hit
    assert sorted(os.listdir(tmp_path / "c")) == [entry.name]


def test_a_non_finite_feature_parameter_is_a_user_error_not_invalid_json(tmp_path):
    for key in ("top_db", "n_mels"):  # top_db=nan used to write NaN into meta.json
        for value in (float("nan"), float("inf")):
            with pytest.raises(UserError, match=rf"config\.features\.{key} .*{value}"):
                cache.build_features(_source(), spec({**PARAMS, key: value}), str(tmp_path),
                                     progress=False)
    assert os.listdir(tmp_path) == []


def test_a_clip_file_gone_since_validation_is_a_user_error_naming_it(tmp_path):
    root = _tone_folder(tmp_path / "data")
    source = _folder_source(root)
    os.remove(tmp_path / "data" / "jazz" / "jazz.00001.wav")
    with pytest.raises(UserError, match=r"jazz\.00001\.wav") as caught:
        cache.build_features(source, SPEC, str(tmp_path / "cache"), progress=False)
    message = str(caught.value)  # not "free space there": the disk is not the problem
    assert "cannot write" not in message and "since the data set was read" in message
    assert "\n" not in message
