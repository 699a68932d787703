"""experiments.run_one end to end on a tiny synthetic set: outputs, determinism, resume.

One uninterrupted 3-epoch run (`whole`, module-scoped) serves every test that reads a
finished run: its files, its predictions, its compile log, its resumed twin and its
refusal of other settings; only the augmented run trains a run of its own."""

import json
import os

import jax
import numpy as np
import pytest

from configs import base
from jaxgenre import experiments
from jaxgenre.checkpoint import check as checkpoint_check


def _config(epochs):
    config = base.get_config()
    config.data.synthetic.update(clips_per_class=4, seconds=4.0)
    config.data.update(clip_seconds=4.0, segment_seconds=1.0)
    config.features.update(n_mels=32)
    config.model.update(name="spectral_cnn", pretrained=False)
    config.optim.learning_rate = 3e-3
    config.train.update(batch_size=16, epochs=epochs, log_every=2, checkpoint_every=1, keep=2)
    config.eval.batch_size = 16
    return config


def _augmented(epochs):
    """_config with every augmentation, the schedule and the test windows on."""
    config = _config(epochs)
    config.augment.update(random_crop=True, crops_per_clip=3, spec_augment=True,
                          mixup_alpha=1.0, gain_db=6.0)
    config.train.label_smoothing = 0.1
    config.optim.update(name="adamw", weight_decay=0.05, schedule="warmup_cosine")
    config.eval.update(window_overlap=0.5, clip_mean="log_probability", plots=False)
    return config


def _params(out):
    return jax.tree.map(np.asarray, out["state"].params)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """run_one(_config(3)) in its own folder, with the names of the functions JAX
    compiled during it."""
    workdir = tmp_path_factory.mktemp("whole")
    out, log = compile_log(lambda: experiments.run_one(_config(3), str(workdir)))
    return {"dir": workdir, "out": out, "compile_log": log}


def compile_log(run):
    """(run(), the messages JAX logged while compiling during it, one per line)."""
    import logging

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("jax").addHandler(handler)
    try:
        with jax.log_compiles(True):
            return run(), "\n".join(messages)
    finally:
        logging.getLogger("jax").removeHandler(handler)


def _check_intervals(clips, table, seed):
    """Each clip figure with its 95 % interval: accuracy's is Wilson's (statsmodels);
    macro precision / recall / F1 / AUC are the seeded bootstrap of the run's own
    saved per-clip predictions (stats.metric_intervals, which test_stats checks against
    references) — not of its segments, not with another seed."""
    from statsmodels.stats.proportion import proportion_confint

    from jaxgenre.results import stats

    n = len(table.labels)
    np.testing.assert_allclose(clips["accuracy_ci"], proportion_confint(
        round(clips["accuracy"] * n), n, method="wilson"))
    expected = stats.metric_intervals(table.labels, table.probabilities, seed=seed)
    for key in ("macro_precision", "macro_recall", "macro_f1", "macro_auc"):
        assert list(clips[f"{key}_ci"]) == list(expected[f"{key}_ci"]), key


def _check_tested_the_best(workdir, out):
    """The state a run tested is its best checkpoint: the newest step in
    checkpoints/best (a step is saved there only when it improved on the one before),
    and no healthy checkpoint was set aside as damaged. The run's last save may still be
    in flight when it restores the best state; it must wait for it, not skip it."""
    best = workdir / "checkpoints" / "best"
    steps = sorted(int(p.name) for p in best.iterdir() if p.name.isdigit())
    assert int(out["state"].step) == steps[-1], (int(out["state"].step), steps)
    assert not (workdir / "checkpoints" / "damaged").exists()


def _check_accuracy(clips, table):
    """The reported clip accuracy is sklearn's on the saved per-clip probabilities, and
    the confusion matrix sklearn's too."""
    from sklearn.metrics import accuracy_score, confusion_matrix

    predictions = table.probabilities.argmax(1)
    assert clips["accuracy"] == accuracy_score(table.labels, predictions)
    np.testing.assert_array_equal(clips["confusion"], confusion_matrix(
        table.labels, predictions, labels=range(table.probabilities.shape[1])))


def test_a_finished_run_writes_its_outputs_and_predicts(whole, tmp_path):
    from jaxgenre.results import clip_table

    workdir = whole["dir"]
    lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2, 3]
    _check_tested_the_best(workdir, whole["out"])
    results = json.loads((workdir / "results.json").read_text())
    assert results["initialisation"] == "random initialisation"
    assert results["test"]["clips"]["n"] == 10 and results["test"]["segments"]["n"] == 40
    table = clip_table.read(str(workdir / clip_table.FILE_NAME))
    assert len(table.clip_ids) == 10
    _check_accuracy(results["test"]["clips"], table)
    _check_intervals(results["test"]["clips"], table, seed=0)
    for figure in ("confusion_clips", "confusion_segments", "roc_clips", "training_curves",
                   "features_per_class", "metrics_intervals"):
        assert (workdir / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    _check_predict(tmp_path, workdir)


def _events(workdir):
    """Every event of the run's TensorBoard files, read by TensorFlow (not tensorboardX,
    which wrote them): [(file, event)] in file order."""
    import tensorflow as tf

    folder = workdir / "tensorboard"
    return [(name, event) for name in sorted(os.listdir(folder))
            for event in tf.compat.v1.train.summary_iterator(str(folder / name))]


def test_a_run_writes_tensorboard_events_as_its_files_say(whole):
    """The epoch scalars equal metrics.jsonl, the test scalars results.json, the loss is
    logged every log_every steps, and each figure is the PNG on disk, pixel for pixel."""
    from PIL import Image
    import io

    workdir = whole["dir"]
    scalars, images = {}, {}
    for _, event in _events(workdir):
        for value in event.summary.value:
            if value.HasField("image"):
                images[value.tag] = value.image.encoded_image_string
            else:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_loss", "train_accuracy", "valid_accuracy", "valid_loss", "seconds"):
        assert scalars[f"epoch/{key}"] == [
            (l["step"], pytest.approx(l[key], rel=1e-6)) for l in lines], key
    results = json.loads((workdir / "results.json").read_text())["test"]
    for level in ("clips", "segments"):
        assert scalars[f"test/{level}/accuracy"] == [
            (lines[-1]["step"], pytest.approx(results[level]["accuracy"], rel=1e-6))]
    per_epoch = lines[0]["step"]  # log_every=2 counts steps within each epoch
    assert [step for step, _ in scalars["train/loss"]] == [
        epoch * per_epoch + k for epoch in range(3) for k in range(2, per_epoch + 1, 2)]
    for figure in ("confusion_clips", "roc_clips", "training_curves", "features_per_class"):
        shown = np.asarray(Image.open(io.BytesIO(images[figure])).convert("RGB"))
        on_disk = np.asarray(Image.open(workdir / f"{figure}.png").convert("RGB"))
        np.testing.assert_array_equal(shown, on_disk)


@pytest.mark.slow  # three more runs, ~26 s; the default suite keeps the finished run
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(whole, tmp_path):
    # "Interrupted" after epoch 1, then the same command again with the full length.
    # (Saved synchronously this time: the same results either way.)
    synchronous = lambda config: config.train.update(async_checkpoints=False) or config
    experiments.run_one(synchronous(_config(1)), str(tmp_path / "resumed"))
    resumed = experiments.run_one(synchronous(_config(3)), str(tmp_path / "resumed"))
    lines = [json.loads(l) for l in (tmp_path / "resumed" / "metrics.jsonl").read_text()
             .splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2, 3]  # the second run starts at epoch 2
    # Its TensorBoard file starts by purging what the first attempt logged after the
    # checkpoint it resumed from (epoch 1's last step): read with TensorBoard's rule (a
    # START at step P hides earlier files' events at steps >= P), every epoch is there
    # once, at its step.
    files = sorted({name for name, _ in _events(tmp_path / "resumed")})
    assert len(files) == 2
    shown = []
    for name, event in _events(tmp_path / "resumed"):
        if event.HasField("session_log"):
            assert name == files[1] and event.step == lines[0]["step"] + 1
            shown = [(step, v) for step, v in shown if step < event.step]
        shown += [(event.step, v.simple_value) for v in event.summary.value
                  if v.tag == "epoch/valid_accuracy"]
    assert shown == [(l["step"], pytest.approx(l["valid_accuracy"])) for l in lines]
    # The last-epoch weights of both runs are equal; so are the chosen best states.
    jax.tree.map(np.testing.assert_array_equal, _params(whole["out"]), _params(resumed))
    assert whole["out"]["results"]["test"] == resumed["results"]["test"]


class _Killed(Exception):
    pass


@pytest.mark.slow  # three augmented runs, ~28 s
def test_an_augmented_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    """With a schedule the run must stop for real (a shorter run has another schedule):
    it is killed right after epoch 1's checkpoint is written."""
    from jaxgenre import checkpoint

    whole = experiments.run_one(_augmented(2), str(tmp_path / "whole"))
    _check_tested_the_best(tmp_path / "whole", whole)
    save = checkpoint.Checkpoints.save

    def save_then_die(self, state, record, **kwargs):
        save(self, state, record, **kwargs)
        self.close()
        raise _Killed

    monkeypatch.setattr(checkpoint.Checkpoints, "save", save_then_die)
    with pytest.raises(_Killed):
        experiments.run_one(_augmented(2), str(tmp_path / "resumed"))
    monkeypatch.undo()
    resumed = experiments.run_one(_augmented(2), str(tmp_path / "resumed"))
    jax.tree.map(np.testing.assert_array_equal, _params(whole), _params(resumed))
    assert whole["results"]["test"] == resumed["results"]["test"]
    # Test windows overlap by half: a 4 s clip's 173 frames hold windows of 43 frames
    # every 22 (six of them, not the four tiles).
    assert whole["results"]["test"]["segments"]["n"] == 10 * ((173 - 43) // 22 + 1)
    # The per-clip probabilities beside results.json give the reported clip figures.
    from jaxgenre.results import clip_table

    table = clip_table.read(str(tmp_path / "whole" / clip_table.FILE_NAME))
    assert len(table.clip_ids) == 10 and len(set(table.clip_ids)) == 10
    np.testing.assert_allclose(table.probabilities.sum(1), 1.0, atol=1e-9)
    clips = whole["results"]["test"]["clips"]
    _check_accuracy(clips, table)
    _check_intervals(clips, table, seed=0)
    # predict cuts and combines a clip as testing did (overlapping windows, log mean):
    # a test clip's audio gets the probabilities test_predictions.csv holds for it.
    from jaxgenre import predict
    from jaxgenre.data import synthetic

    predictor = predict.Predictor(str(tmp_path / "whole"))
    for clip_id, row in list(zip(table.clip_ids, table.probabilities))[:3]:
        name, index = clip_id.split("/synthetic.")
        y = synthetic.generate_clip(synthetic.CLASS_NAMES.index(name), int(index), seconds=4.0)
        np.testing.assert_allclose(predictor.probabilities(y), row, atol=1e-5)


def _check_predict(tmp_path, run):
    import soundfile as sf

    from jaxgenre import predict
    from jaxgenre.data import synthetic

    folder = tmp_path / "mine"
    folder.mkdir()
    sf.write(str(folder / "a_metal_song.flac"), synthetic.generate_clip(6, 99, seconds=7.0), 22050)
    sf.write(str(folder / "short.wav"), synthetic.generate_clip(1, 99, seconds=0.5), 16000)
    (folder / "broken.mp3").write_bytes(b"ID3 not really")
    out = tmp_path / "predictions.json"
    code = predict.main([f"--workdir={run}", "--top_k=2", f"--json={out}",
                         str(folder)])
    assert code == 0
    rows = {os.path.basename(r["file"]): r for r in json.loads(out.read_text())}
    assert set(rows) == {"a_metal_song.flac", "short.wav", "broken.mp3"}
    assert "error" in rows["broken.mp3"] and "broken.mp3" in rows["broken.mp3"]["error"]
    for name in ("a_metal_song.flac", "short.wav"):
        top = rows[name]["top"]
        assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"]
        assert top[0]["genre"] in synthetic.CLASS_NAMES
    # The Python API: one clip of any length → class probabilities summing to one.
    predictor = predict.Predictor(str(run))
    probs = predictor.probabilities(synthetic.generate_clip(6, 99, seconds=7.0))
    assert probs.shape == (10,) and abs(float(probs.sum()) - 1.0) < 1e-5
    assert predict.main([f"--workdir={tmp_path / 'nothing'}", str(folder)]) == 2
    # A run whose every checkpoint is damaged (a damaged best step alone falls back to
    # the same step in `last`: test_checkpoint.py): refused in one line naming the folder
    # and the fix, and nothing moved — predict only reads.
    import shutil

    from jaxgenre import errors

    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged, ignore=shutil.ignore_patterns("cache"))
    for path in (damaged / "checkpoints").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00")
    with pytest.raises(errors.UserError, match="no readable checkpoint in .*damaged/checkpoints/"
                                               "best.*new --workdir"):
        predict.Predictor(str(damaged))
    assert predict.main([f"--workdir={damaged}", str(folder)]) == 2
    assert sorted(p.name for p in (damaged / "checkpoints").iterdir()) == ["best", "last"]


def test_training_compiles_each_step_function_once(whole):
    """No recompiles: three epochs (each ending with a partial, padded validation batch,
    then the test part) compiled train_step and predict_step exactly once each."""
    import re

    compiled = re.findall(r"Compiling jit\((\w+)\)", whole["compile_log"])
    assert compiled.count("train_step") == 1, compiled
    assert compiled.count("predict_step") == 1, compiled


def test_a_run_resumed_with_another_model_or_features_is_refused(whole, tmp_path):
    """Checkpoints of n_mels=32 cannot be the state of an n_mels=16 run: refused in one
    sentence naming the key (before, the restore failed, fell back, and the next save
    collided with the steps still there)."""
    import shutil

    from jaxgenre import errors

    workdir = tmp_path / "run"
    shutil.copytree(whole["dir"], workdir, ignore=shutil.ignore_patterns("cache"))
    metrics = (workdir / "metrics.jsonl").read_text()
    changed = _config(4)
    changed.features.n_mels = 16
    changed.optim.learning_rate = 1e-3
    with pytest.raises(errors.UserError, match=r"holds checkpoints of another run \(features"
                                               r"\.n_mels: 32 there, 16 here; optim\."
                                               r"learning_rate: 0\.003 there, 0\.001 here\)"):
        experiments.run_one(changed, str(workdir))
    assert (workdir / "metrics.jsonl").read_text() == metrics  # untouched
    assert not (workdir / "checkpoints" / "damaged").exists()
    checkpoint_check.check_resumable(_config(5), str(workdir))  # more epochs: resumable
    other_mfcc = _config(4)
    other_mfcc.features.n_mfcc = 13  # no part of a mel run's features: resumable
    checkpoint_check.check_resumable(other_mfcc, str(workdir))
    other_hop = _config(4)
    other_hop.features.hop_length = 256  # the frames change: refused
    with pytest.raises(errors.UserError, match="features.hop_length: 512 there, 256 here"):
        checkpoint_check.check_resumable(other_hop, str(workdir))


def test_a_run_written_before_a_state_key_existed_still_resumes_and_its_value_is_checked(
        whole, tmp_path):
    """run.json files from before `optim.ema_decay` lack the key: they ran without the
    average, so an unchanged config resumes them and one that turns it on is refused."""
    import shutil

    from jaxgenre import errors

    workdir = tmp_path / "run"
    shutil.copytree(whole["dir"], workdir, ignore=shutil.ignore_patterns("cache"))
    run = json.loads((workdir / "run.json").read_text())
    del run["config"]["optim"]["ema_decay"]
    (workdir / "run.json").write_text(json.dumps(run))
    checkpoint_check.check_resumable(_config(5), str(workdir))
    averaged = _config(5)
    averaged.optim.ema_decay = 0.9
    with pytest.raises(errors.UserError, match=r"optim\.ema_decay: 0\.0 there, 0\.9 here"):
        checkpoint_check.check_resumable(averaged, str(workdir))
