"""Shared test set-up: the repository root on sys.path (so `import jaxgenre` and
`import configs` work from a plain checkout), the `slow` marker's default deselection,
and a sandbox for every write a test (or a run it starts) makes outside its tmp path.

Slow tests: `@pytest.mark.slow` marks the end-to-end runs over ~10 s on 2 cores (training
runs, in-process or in launch.py subprocesses, beyond the one of each kind the default
keeps; the fault injections; the 8-device equality; full-size models compiled); a plain
`pytest -q` deselects them, says how many in its last lines, and stays under 10 minutes
on a 2-core CPU. `--runslow`, or
the environment variable CI set (`.ci/run` sets CI=true), runs them too; so does naming
a test (`path::name`) or choosing with `-m`.

Writes: for the whole session HOME, XDG_CACHE_HOME, XDG_CONFIG_HOME, MPLCONFIGDIR,
KERAS_HOME and HYPOTHESIS_STORAGE_DIRECTORY point into a temporary folder, and for each
test TORCH_HOME, JAXGENRE_DATA and TFDS_DATA_DIR point into a temporary folder of that
test's own, so a download or a default cache lands there (subprocesses inherit
os.environ). At the end the session fails, naming the paths, if anything was written
into the repository or into that stand-in ~ (or the session-wide data caches, but for
the compiled steps JAX's persistent cache shares across runs by design)."""

import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# The suite runs with the CPU option launch.py applies (before JAX starts), chosen here
# as explicitly as there: importing jaxgenre itself changes no flag.
from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()


import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

# ----------------------------------------------------------------------------- slow tests

CI_OFF = ("", "0", "false", "no")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (the default when $CI is set)")


def runs_slow(config) -> bool:
    """Whether this session runs the slow tests: --runslow, $CI set (not 0/false/no),
    a test named by node id, or a -m expression choosing by marker."""
    return (config.getoption("--runslow")
            or os.environ.get("CI", "").strip().lower() not in CI_OFF
            or bool(config.getoption("markexpr", ""))
            or any("::" in arg for arg in config.args))


def pytest_collection_modifyitems(config, items):
    if runs_slow(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
        config.hook.pytest_deselected(items=slow)
    config.stash[_SLOW_DESELECTED] = len(slow)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    deselected = config.stash.get(_SLOW_DESELECTED, 0)
    if deselected:
        terminalreporter.write_line(
            f"{deselected} slow tests deselected (end-to-end runs): `pytest --runslow` or "
            f"CI=true runs them; .ci/run runs everything")
    for line in config.stash.get(_LEAKS, []):
        terminalreporter.write_line(line, red=True, bold=True)


# ------------------------------------------------------------ writes stay in tmp paths

SESSION_ENV = ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "KERAS_HOME",
               "HYPOTHESIS_STORAGE_DIRECTORY")  # else .hypothesis/ in the working folder
PER_TEST_ENV = ("TORCH_HOME", "JAXGENRE_DATA", "TFDS_DATA_DIR")
NOT_OURS = {".git", ".venv", "__pycache__", ".pytest_cache"}  # interpreter / tool state
_SLOW_DESELECTED = pytest.StashKey[int]()
_SANDBOX = pytest.StashKey[dict]()
_LEAKS = pytest.StashKey[list]()


def repo_paths(root: str = ROOT) -> set:
    """Every file under the repository, relative, but those in NOT_OURS folders and
    Python sources (a developer may add a module while the suite runs; no test writes
    one, and whatever a run writes — results, caches, .hypothesis/ — is not .py)."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in NOT_OURS]
        rel = os.path.relpath(folder, root)
        found.update(os.path.normpath(os.path.join(rel, name)) for name in files
                     if not name.endswith(".py"))
    return found


def _files_under(folder: str) -> list:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files)


def pytest_configure(config):
    base = tempfile.mkdtemp(prefix="jaxgenre-tests-")
    values = {name: os.path.join(base, name.lower()) for name in SESSION_ENV + PER_TEST_ENV}
    os.makedirs(values["HOME"])
    config.stash[_SANDBOX] = {"base": base, "before": {n: os.environ.get(n) for n in values},
                              "repo": repo_paths()}
    os.environ.update(values)


@pytest.fixture(autouse=True)
def _writes_stay_in_tmp_path(tmp_path_factory, monkeypatch):
    """Each test's data, weights and TFDS caches in a temporary folder of its own (beside
    its tmp_path, not in it: a test may use tmp_path as a data root and list it)."""
    folder = tmp_path_factory.mktemp("env")
    for name in PER_TEST_ENV:
        monkeypatch.setenv(name, str(folder / name.lower()))


def pytest_sessionfinish(session, exitstatus):
    sandbox = session.config.stash.get(_SANDBOX, None)
    if sandbox is None:
        return
    base = sandbox["base"]
    leaks = [f"wrote into the repository: {p}"
             for p in sorted(repo_paths() - sandbox["repo"])]
    # JAX's persistent compilation cache (`compile_cache`, "auto": <data home>/
    # compile_cache/) is shared by design: every run of the session, in process or
    # launched by a module-wide fixture, may load and add compiled steps there.
    shared = os.path.join(base, "jaxgenre_data", "compile_cache") + os.sep
    for name in ("HOME",) + PER_TEST_ENV:  # ~ itself, and the session-wide caches
        leaks += [f"wrote outside its tmp path (${name}): {p}"
                  for p in _files_under(os.path.join(base, name.lower()))
                  if not p.startswith(shared)]
    if leaks:
        shown = leaks[:10] + ([f"... and {len(leaks) - 10} more"] if len(leaks) > 10 else [])
        session.config.stash[_LEAKS] = [f"ERROR: a test {line}" for line in shown] + [
            f"(the stand-in ~ and caches are kept in {base})"]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    sandbox = config.stash.get(_SANDBOX, None)
    if sandbox is None:
        return
    for name, value in sandbox["before"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if not config.stash.get(_LEAKS, None):
        shutil.rmtree(sandbox["base"], ignore_errors=True)


# ------------------------------------------------------------------- shared fixtures

GENRES = ("blues", "jazz", "rock")
SR = 22050
# The files a GTZAN-like test folder holds besides its good clips, and why each is bad.
BAD_FILES = {
    "blues/blues.00099": "the file is empty",
    "jazz/jazz.00054": "corrupt or unsupported|no recognisable audio header",
    "rock/rock.00010": "too short: 2.00 s",
    "rock/notes.txt": "not an audio file",
}


def write_gtzan_folder(root, layout: str = "kaggle", seconds: float = 11.0) -> str:
    """A tiny GTZAN copy: 2 good clips per genre (tones), a stereo 44.1 kHz clip, and the
    bad files of BAD_FILES. layout 'kaggle' = genres_original/*.wav, 'original' =
    genres/*.au (Sun AU, 16-bit, like GTZAN's tarball)."""
    sub, ext, fmt = {"kaggle": ("genres_original", "wav", "WAV"),
                     "original": ("genres", "au", "AU")}[layout]
    base = os.path.join(str(root), sub)
    n = int(seconds * SR)
    for g_index, genre in enumerate(GENRES):
        os.makedirs(os.path.join(base, genre))
        for i in range(2):
            freq = 110.0 * (g_index + 1) * (i + 1)
            y = 0.3 * np.sin(2 * np.pi * freq * np.arange(n) / SR)
            sf.write(os.path.join(base, genre, f"{genre}.{i:05d}.{ext}"), y.astype(np.float32),
                     SR, format=fmt, subtype="PCM_16")
    t = np.arange(int(seconds * 44100)) / 44100
    stereo = np.stack([0.2 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 500 * t)], 1)
    sf.write(os.path.join(base, "rock", f"rock.00011.{ext}"), stereo.astype(np.float32), 44100,
             format=fmt, subtype="PCM_16")
    open(os.path.join(base, "blues", f"blues.00099.{ext}"), "wb").close()
    with open(os.path.join(base, "jazz", f"jazz.00054.{ext}"), "wb") as f:
        f.write(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(range(200)))
    sf.write(os.path.join(base, "rock", f"rock.00010.{ext}"), np.zeros(2 * SR, np.float32), SR,
             format=fmt, subtype="PCM_16")
    with open(os.path.join(base, "rock", "notes.txt"), "w") as f:
        f.write("not audio")
    return str(root)


@pytest.fixture(params=["kaggle", "original"])
def gtzan_folder(request, tmp_path):
    return write_gtzan_folder(tmp_path / "gtzan", request.param)
