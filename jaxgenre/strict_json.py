"""JSON files that are JSON, and run files read back in one line on damage.

Python's `json` writes a NaN or an infinity as `NaN` / `Infinity`, which no JSON parser
but Python's accepts (JavaScript's, jq, pandas' strict mode reject the whole file). A
figure that is undefined — an AUC without positives, a diverged loss, an interval of
fewer than two values — is written here as `null` instead (`allow_nan=False` guarantees
none slips through); where a statistic is undefined, the producer adds the reason
beside it (e.g. `stats.corrected_resampled_ttest`'s `reason`). numpy scalars and arrays
are written as numbers and lists.

`load` reads a run's JSON file (results.json, run.json) and turns a truncated, non-UTF-8
or non-object file into a `UserError` naming it; files written before this module (with
`NaN` in them) still read.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Dict

import numpy as np

from jaxgenre.errors import UserError

_UMASK = os.umask(0o022)  # read at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def finite(value: Any) -> Any:
    """`value` with every NaN / ±inf float replaced by None, numpy scalars and arrays
    made Python numbers and lists, tuples made lists (what JSON can hold)."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    if isinstance(value, np.ndarray):
        return finite(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, **kwargs) -> str:
    """`json.dumps` of `finite(value)`, refusing anything that is not JSON."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def dump(value: Any, f, **kwargs) -> None:
    """`json.dump` of `finite(value)` to the open file `f`, refusing anything that is not
    JSON. The text is built first, so a failure leaves no half-written file content."""
    f.write(dumps(value, **kwargs))


def write(path: str, value: Any, **kwargs) -> None:
    """`value` as strict JSON in `path`, written whole (`write_text`)."""
    write_text(path, dumps(value, **kwargs))


def write_text(path: str, text: str) -> None:
    """`text` in `path`, whole or not at all: written beside it under a temporary name,
    then renamed over it, so a reader (another process, a run resumed after a kill)
    never sees half a file, and a failed write leaves the old file. The new file gets
    the mode `open(path, "w")` would give (the old file's, else 0666 less the umask).
    The package's one atomic file write (run files, results.md, audio-check verdicts,
    with `write_bytes` the embeddings)."""
    _write_whole(path, text.encode("utf-8"))


def write_bytes(path: str, data: bytes) -> None:
    """`data` in `path`, whole or not at all, as `write_text` writes text."""
    _write_whole(path, data)


def _write_whole(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path: str, *, what: str = "a run's file") -> Dict:
    """The JSON object in `path`; a file that cannot be read, is not UTF-8 JSON (a run
    stopped while writing it) or holds no JSON object is a `UserError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"'{path}' is not valid JSON ({e}): {what} was cut short or "
                        f"edited; run it again (it resumes) or remove the file") from None
    except RecursionError:  # '[' nested thousands deep: no file a run writes
        raise UserError(f"'{path}' nests its JSON too deeply to be {what}; it was replaced "
                        f"or edited: run it again") from None
    except OSError as e:
        raise UserError(f"'{path}' cannot be read: {e.strerror or e}") from None
    if not isinstance(value, dict):
        raise UserError(f"'{path}' is not a JSON object (it holds {type(value).__name__}): "
                        f"{what} was replaced or edited; run it again")
    return value
