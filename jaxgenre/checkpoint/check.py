"""What is wrong with a checkpoint step, told apart before anything is moved.

Restoring is not repairing: only a step whose bytes or JSON cannot be read is damaged
(`Damaged`: training sets it aside, predict skips it). A step that reads fine but holds
another model's state — another version or config of the run, a changed shape, dtype or
parameter tree — is healthy; it is a `UserError` naming the first leaf that differs,
found from the step's own metadata before orbax restores anything. A file the operating
system will not give (permission, I/O error) is a `UserError` naming the file and the
OS's reason. Nothing here moves or writes anything.

Before any of that, `check_resumable` refuses a work directory whose checkpoints belong
to another run (another model, features or optimiser): the resume guard.
"""

from __future__ import annotations

import errno
import json
import os
import re
from typing import Dict, Iterator, Optional, Tuple

import jax
import orbax.checkpoint as ocp
from etils import epath

from configs import base
from jaxgenre import features, strict_json
from jaxgenre.errors import UserError

# The small JSON files of a step: orbax's step metadata (read when a manager opens the
# folder), the run record, and the best step's metrics.
JSON_FILES = ("_CHECKPOINT_METADATA", os.path.join("record", "metadata"),
              os.path.join("metrics", "metrics"))
# TensorStore's statuses for bytes that do not decode, are cut short or are missing.
_DAMAGE_STATUSES = ("DATA_LOSS", "OUT_OF_RANGE", "NOT_FOUND", "FAILED_PRECONDITION",
                    "INVALID_ARGUMENT", "UNKNOWN")
_NOTHING_MOVED = "nothing was moved"


class Damaged(Exception):
    """A step whose bytes or JSON cannot be read; the message says which and why."""


def brief(error: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, at most `limit` characters: orbax's errors
    carry whole TensorStore specs, which would bury the one line that matters."""
    lines = str(error).strip().splitlines()
    first = (lines[0] if lines else "").split(". See full TensorStore details")[0]
    first = first.split(" [tensorstore_spec")[0]
    text = f"{type(error).__name__}: {first}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def os_failure(error: BaseException) -> Optional[Tuple[int, Optional[str]]]:
    """(errno, file or None) when `error` (or one it came from) is the operating
    system's refusal — an OSError, or TensorStore's message with its `os_error_code`
    or PERMISSION_DENIED status — else None. A missing file (ENOENT) is not one: in a
    step orbax wrote, a missing file is damage."""
    for err in _chain(error):
        if isinstance(err, OSError) and err.errno:
            if err.errno != errno.ENOENT:
                return err.errno, err.filename
            continue
        text = str(err)
        code = re.search(r"os_error_code='?(\d+)", text)
        number = int(code.group(1)) if code else (
            errno.EACCES if text.startswith("PERMISSION_DENIED") else None)
        if number and number != errno.ENOENT:
            files = re.findall(r'(?:Failed to open: |local file )"([^"]+)"', text)
            return number, files[-1] if files else None
    return None


def unreadable(where: str, number: int, path: Optional[str]) -> UserError:
    return UserError(f"cannot read {where}: {path or 'a file in it'}: {os.strerror(number)} "
                     f"({_NOTHING_MOVED}); make it readable by this user (or give another "
                     f"--workdir) and run again")


def _is_damage(error: BaseException) -> bool:
    for err in _chain(error):
        if isinstance(err, (json.JSONDecodeError, UnicodeDecodeError, FileNotFoundError,
                            EOFError, Damaged)):
            return True
        text = str(err)
        if (text.split(":", 1)[0] in _DAMAGE_STATUSES or "tensorstore_spec" in text
                or "See full TensorStore details" in text
                or text.startswith(('Error opening "', "Error reading ", "Error decoding "))):
            return True
    return False


def classify(error: BaseException, where: str) -> BaseException:
    """What a failed read of `where` ('checkpoint 3 in <folder>') means: a `UserError`
    for the OS's refusal (naming the file), `Damaged` for unreadable bytes or JSON, or
    `error` itself — a bug, to be raised as it is."""
    failure = os_failure(error)
    if failure is not None:
        return unreadable(where, *failure)
    if _is_damage(error):
        return Damaged(brief(error))
    return error


def check_readable(step_dir: str, where: str) -> None:
    """Opens every folder and file of a step (reading nothing): one the OS refuses is a
    `UserError` naming it, found before orbax turns it into 'file not found' or a tree
    structure error, which would look like damage."""
    def refuse(error: OSError):
        if error.errno != errno.ENOENT:
            raise unreadable(where, error.errno, error.filename)

    for folder, _, files in os.walk(step_dir, onerror=refuse):
        for name in files:
            path = os.path.join(folder, name)
            try:
                os.close(os.open(path, os.O_RDONLY))
            except OSError as e:
                if e.errno != errno.ENOENT and not os.path.islink(path):
                    raise unreadable(where, e.errno, path) from None


def screen_json(step_dir: str, where: str) -> None:
    """`Damaged` when one of the step's small JSON files (`JSON_FILES`) does not parse;
    a `UserError` when the OS refuses it."""
    for name in JSON_FILES:
        path = os.path.join(step_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                json.loads(f.read().decode("utf-8"))
        except OSError as e:
            raise unreadable(where, e.errno, path) from None
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise Damaged(f"{brief(e)} in {name}") from None


def leaf_name(path) -> str:
    """'params.Conv_0.kernel' for a key path (dict keys, attributes, sequence indices)."""
    parts = []
    for key in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(key, attribute):
                parts.append(str(getattr(key, attribute)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)


def _leaves(tree) -> Dict[str, object]:
    return {leaf_name(path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def mismatch(saved: Dict[str, object], wanted: Dict[str, object]) -> Optional[str]:
    """The first leaf (in the wanted state's order) whose presence, shape or dtype
    differs between `saved` and `wanted` (name -> anything with .shape / .dtype), said in
    words; None when they agree."""
    for name, want in wanted.items():
        if name not in saved:
            return f"{name} is not in the checkpoint"
        have = saved[name]
        if tuple(have.shape) != tuple(want.shape):
            return f"{name} has shape {tuple(have.shape)} there, {tuple(want.shape)} here"
        if jax.numpy.dtype(have.dtype) != jax.numpy.dtype(want.dtype):
            return (f"{name} is {jax.numpy.dtype(have.dtype).name} there, "
                    f"{jax.numpy.dtype(want.dtype).name} here")
    extra = [name for name in saved if name not in wanted]
    return f"{extra[0]} is in the checkpoint but not in this model" if extra else None


def check_fits(step_dir: str, abstract_state, where: str) -> None:
    """A `UserError` naming the first leaf where the step's saved state (its metadata,
    read before any array) differs from `abstract_state`; `Damaged` or the OS's refusal
    when the metadata cannot be read."""
    try:
        metadata = ocp.StandardCheckpointHandler().metadata(
            epath.Path(os.path.join(step_dir, "state")))
        saved = _leaves(metadata.tree)
    except Exception as e:  # noqa: BLE001 - told apart by classify; a bug re-raised
        problem = classify(e, where)
        if problem is e:
            raise
        raise problem from None
    difference = mismatch(saved, _leaves(abstract_state))
    if difference:
        raise UserError(f"{where} does not fit this model: {difference} (it was saved by "
                        f"another version or configuration of the run; {_NOTHING_MOVED}): "
                        f"give a new --workdir, or the settings it was trained with")


def check_step(step_dir: str, abstract_state, where: str) -> None:
    """Everything `restore` needs to know before reading a step's arrays: its files can
    be opened, its JSON parses, its state has `abstract_state`'s tree, shapes and
    dtypes. Raises `UserError` or `Damaged`."""
    check_readable(step_dir, where)
    screen_json(step_dir, where)
    check_fits(step_dir, abstract_state, where)


def read_step(step_dir: str, abstract_state, where: str, restore=None):
    """(state, record) of one step after `check_step`; `restore(args)` reads it (a
    manager's, for training), by default a plain orbax Checkpointer that writes nothing.
    A failed read is raised as `classify` says."""
    check_step(step_dir, abstract_state, where)
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                              record=ocp.args.JsonRestore())
    try:
        if restore is None:
            with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
                restored = checkpointer.restore(epath.Path(step_dir), args=args)
        else:
            restored = restore(args)
    except Exception as e:  # noqa: BLE001 - told apart by classify; a bug re-raised
        problem = classify(e, where)
        if problem is e:
            raise
        raise problem from None
    record = restored["record"]
    if not isinstance(record, dict):
        raise Damaged(f"its record is {type(record).__name__}, not a JSON object")
    return restored["state"], dict(record)


# ------------------------------------------------------------- the resume guard

# What the saved train state is made of: a run resumed with other values here cannot
# restore it (or would silently be another run), so that is refused, naming them.
STATE_SECTIONS = ("model", "features", "optim")


def check_resumable(config, workdir: str) -> None:
    """A `UserError` when `workdir` holds checkpoints of a run whose `STATE_SECTIONS` or
    segment length differ from `config`'s, naming the differences; resuming needs the
    same command (more epochs allowed). Without run.json or checkpoints: nothing to do."""
    last = os.path.join(workdir, "checkpoints", "last")
    run_file = os.path.join(workdir, "run.json")
    if not (os.path.isfile(run_file) and os.path.isdir(last)
            and any(d.isdigit() for d in os.listdir(last))):
        return
    before = strict_json.load(run_file, what="the run's run.json").get("config", {})
    # A key added since that run.json was written: the run had its default (every
    # new setting's default is the behaviour from before it), so it still resumes.
    before = json.loads(base.with_defaults(before).to_json()) if isinstance(before, dict) else {}
    now = json.loads(config.to_json())
    keys = tuple(f"{section}." for section in STATE_SECTIONS) + ("data.segment_seconds",)
    # Of config.features, what the feature spec keeps: a mel run whose n_mfcc changed
    # computes the same features (and shares their cache entry), so it still resumes.
    used = {f"features.{k}" for tree in (before, now) if isinstance(tree.get("features"), dict)
            for k in ("sr", "hop_length",
                      *features.FeatureSpec.from_config(tree["features"]).identity())}
    kept = lambda k: k.startswith(keys) and (not k.startswith("features.") or k in used)
    old = {k: v for k, v in base.flat(before).items() if kept(k)}
    new = {k: v for k, v in base.flat(now).items() if kept(k)}
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if changed:
        shown = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} here" for k in changed[:4])
        raise UserError(
            f"work directory {workdir} holds checkpoints of another run ({shown}"
            f"{'; ...' if len(changed) > 4 else ''}): give a new --workdir, or the same "
            f"settings to resume it")
