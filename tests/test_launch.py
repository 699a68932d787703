"""The README's commands, end to end, in subprocesses (as a user runs them). The study
cell's training and resume is `slow` (deselected by a plain `pytest -q`; conftest.py);
the cheaper default-workdir run keeps launch.py's training path in the default suite."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.data.synthetic.clips_per_class=3", "--config.data.synthetic.seconds=4",
        "--config.data.clip_seconds=4", "--config.data.segment_seconds=1",
        "--config.features.n_mels=32", "--config.train.epochs=2", "--config.train.batch_size=8",
        "--config.eval.batch_size=8"]


# A proxy nobody listens on (port 9, discard, closed here): every http(s) fetch fails at
# once, with or without a network, so a test sees the offline behaviour it asserts and
# never downloads (the weights would go to $TORCH_HOME, under its tmp path: conftest.py).
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "no_proxy": "", "NO_PROXY": ""}


def _run(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env=None if env is None else {**os.environ, **env})


@pytest.mark.slow
def test_launch_trains_a_study_cell_and_resumes(tmp_path):
    # resnet18 asks for ImageNet weights; none can be had here, so it must warn and go on.
    args = ["launch.py", "--config=configs/resnet_mel.py", f"--workdir={tmp_path}", *TINY]
    result = _run(*args, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING: no torchvision checkpoint for resnet18" in result.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "resnet18" and results["feature"] == "mel"
    assert results["initialisation"].startswith("random initialisation: ImageNet weights not")
    assert "test results: resnet18 on mel" in result.stdout and "0.5759" in result.stdout
    for name in ("data_report.json", "run.json", "metrics.jsonl", "confusion_clips.png"):
        assert (tmp_path / name).exists(), name
    assert not os.path.exists(os.path.join(os.environ["TORCH_HOME"], "hub", "checkpoints",
                                           "resnet18-f37072fd.pth"))  # nothing fetched
    again = _run(*args, env=OFFLINE)  # the same command again: all done, nothing retrained
    assert again.returncode == 0 and "resuming" in again.stdout
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2


def test_default_workdir_is_runs_slash_config_name(tmp_path):
    # The README's main command gives no --workdir; here it runs from another folder.
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "launch.py"),
         f"--config={os.path.join(ROOT, 'configs', 'spectralcnn_mfcc.py')}", *TINY,
         "--config.train.epochs=1", "--config.eval.plots=False"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / "spectralcnn_mfcc" / "results.json").exists()


def test_mistyped_override_fails_naming_the_key(tmp_path):
    result = _run("launch.py", "--config=configs/resnet_mel.py", f"--workdir={tmp_path}",
                  "--config.featurs.kind=mel")
    assert result.returncode != 0
    assert "featurs" in result.stderr and "features" in result.stderr


USER_ERRORS = [
    (["--config.data.source=folder"], "data.source='folder' needs --config.data.root=PATH"),
    (["--config.data.source=folder", "--config.data.root={missing}"],
     "data root '{missing}' does not exist"),
    (["--config.data.source=folder", "--config.data.root={empty}"], "no audio files under"),
    (["--config.features.kind=chroma"], "config.features.kind must be one of mel, spec, mfcc"),
    (["--config.features.kind=waveform"],
     "'resnet18' takes mel, spec, mfcc features, not features.kind='waveform'"),
    (["--config.model.name=vgg16"], "unknown model 'vgg16': config.model.name must be one of"),
    (["--config.optim.name=lion"], "config.optim.name must be one of adam, adamw, sgd"),
    # Refused before the data are opened (the missing root would be the error after).
    (["--config.optim.schedule=step", "--config.data.source=folder",
      "--config.data.root={missing}"],
     "config.optim.schedule must be one of constant, cosine, warmup_cosine; got 'step'"),
    (["--config.model.name=sample_cnn", "--config.features.kind=waveform",
      "--config.augment.spec_augment=True"], "config.augment.spec_augment masks frequency"),
    (["--config.eval.clip_mean=median"], "config.eval.clip_mean must be one of probability, "
                                         "log_probability"),
    (["--config.eval.window_overlap=1.0"], "config.eval.window_overlap must be a number in "
                                           "[0, 1)"),
    (["--config.seeds=2", "--config.data.split=kfold"], "config.seeds with data.split='kfold'"),
    (["--config.data.synthetic.variant=extreme"],
     "data.synthetic.variant must be one of standard, hard"),
    (["--config.data.source=fma", "--config.data.fma.subset=huge",
      "--config.data.home={empty}"],
     "config.data.fma.subset must be one of small, medium, large; got 'huge'"),
    (["--config.train.batch_size=0"], "config.train.batch_size must be a whole number"),
]


@pytest.fixture(scope="module")
def user_error_runs(tmp_path_factory):
    """launch.py once per USER_ERRORS case, two at a time (each run is mostly Python
    and JAX starting up, on one core): {case index: (completed process, paths)}."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index):
        base = tmp_path_factory.mktemp(f"user_error_{index}")
        (base / "empty" / "blues").mkdir(parents=True)
        paths = {"missing": str(base / "missing"), "empty": str(base / "empty")}
        overrides = [o.format(**paths) for o in USER_ERRORS[index][0]]
        return _run("launch.py", "--config=configs/resnet_mel.py",
                    f"--workdir={base / 'run'}", *overrides), paths

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        return dict(enumerate(pool.map(one, range(len(USER_ERRORS)))))


@pytest.mark.parametrize("case", range(len(USER_ERRORS)),
                         ids=[" ".join(o.replace("--config.", "") for o in overrides).translate(
                             {ord("{"): None, ord("}"): None}) for overrides, _ in USER_ERRORS])
def test_user_errors_are_one_line_and_exit_2(user_error_runs, case):
    result, paths = user_error_runs[case]
    message = USER_ERRORS[case][1]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1 and message.format(**paths) in lines[0], result.stderr[-2000:]


@pytest.mark.slow  # the feature_summary tool end to end, ~13 s
def test_feature_summary_writes_summary_and_figure(tmp_path):
    result = _run("-m", "jaxgenre.feature_summary", f"--workdir={tmp_path}", "--seconds=3",
                  "--ref=max")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "feature_summary.json").read_text())
    assert set(summary["features"]) == {"mel", "spec", "mfcc", "waveform"}
    assert summary["features"]["mel"]["shape"] == [128, 130]
    assert summary["features"]["mel"]["max"] == pytest.approx(0.0, abs=1e-4)  # ref='max'
    for kind, tol in (("spec", 0.01), ("mel", 0.01), ("mfcc", 0.02)):
        assert summary["features"][kind]["max_abs_diff_vs_librosa"] <= tol
    png = (tmp_path / "features.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_import_jaxgenre_does_not_import_torch_or_tensorflow():
    code = ("import sys, jaxgenre, jaxgenre.audio, jaxgenre.features, jaxgenre.feature_summary, "
            "jaxgenre.models, jaxgenre.models.torchvision_port, jaxgenre.data.prepare, "
            "jaxgenre.training.train, jaxgenre.predict, jaxgenre.experiments, "
            "jaxgenre.results.writer, "
            "jaxgenre.results.tensorboard; jaxgenre.results.tensorboard.load();"
            "bad = [m for m in ('torch', 'tensorflow', 'torchvision') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = _run("-c", code)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_config_file_not_derived_from_base_gets_every_default(tmp_path):
    """A config file that sets only what it cares about: launch fills the rest from
    configs/base.py (no AttributeError on a key it left out) and validates it before
    any work, so its one bad value is the one-line error."""
    (tmp_path / "mine.py").write_text(
        "from ml_collections import config_dict\n\n\n"
        "def get_config():\n"
        "    return config_dict.ConfigDict({'model': {'name': 'spectral_cnn'},\n"
        "                                   'optim': {'schedule': 'step'}})\n")
    result = _run("launch.py", f"--config={tmp_path / 'mine.py'}", f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1 and "config.optim.schedule must be one of" in lines[0]


def test_a_tool_given_a_path_it_cannot_write_ends_in_one_line(tmp_path):
    """cli.run: an OSError naming a file given on the command line is the user's to fix
    (exit 2, one line), here feature_summary's --workdir that is a file."""
    (tmp_path / "taken").write_text("a file, not a folder")
    result = _run("-m", "jaxgenre.feature_summary", f"--workdir={tmp_path / 'taken'}",
                  "--seconds=1")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1 and str(tmp_path / "taken") in lines[0]
