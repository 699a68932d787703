"""Embeddings and tags for any audio files, from a pretrained tagger or a trained run:

    python -m jaxgenre.embed --model=musicnn_msd --out=FILE.npz song.mp3 album/
    python -m jaxgenre.embed --model=panns_cnn14 --out=FILE.npz album/
    python -m jaxgenre.embed --workdir=runs/resnet_mel --out=FILE.npz album/

Each file (folders are walked recursively for audio) is decoded at the model's sample
rate, turned into the model's feature, and cut into windows back to back — musicnn's
taggers' windows are musicnn's own extractor's (3 s, no overlap), PANNs' CNN14's are
10 s, a run's are its training segments — and each window goes through the model in
batches. FILE.npz
holds, as plain arrays (no pickles): `files`; per clip `clip_mean` and `clip_max` (the
mean and max of its windows' embeddings) and `clip_tags` (the mean taggram); per window
`window_embeddings`, `taggram` (tag probabilities: sigmoid for a tagger, the run's class
probabilities otherwise), `window_file` (index into `files`) and `window_start_seconds`;
`tag_names`; and `failed_files` / `failed_reasons` for every file that could not be read,
and why. A file shorter than one window is padded to one (as predict does).

Resumable: finished files are kept in `FILE.npz.partial/` and a rerun of the same
command skips them; the folder goes when FILE.npz is written (whole, atomically).
Exit status 0 when at least one file was embedded, 1 when none was, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import os
import shutil
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from jaxgenre import audio, errors, strict_json
from jaxgenre.embedders import PRETRAINED, Embedder, from_run

DEFAULT_MAX_SECONDS = 600.0


def windows(feature: np.ndarray, window_frames: int) -> Tuple[np.ndarray, np.ndarray]:
    """(windows (n, ..., window_frames), their first frames): back to back from frame 0,
    a last partial window dropped (musicnn's extractor does the same). A feature shorter
    than one window is padded to one beforehand (`FeatureSpec.pad_to`, as predict)."""
    frames = feature.shape[-1]
    starts = np.arange(0, frames - window_frames + 1, window_frames)
    return np.stack([feature[..., s:s + window_frames] for s in starts]), starts


def embed_file(embedder: Embedder, path: str, max_seconds: float) -> Dict[str, np.ndarray]:
    """One file's windows' embeddings, taggram and starts (seconds); raises
    `audio.AudioDecodeError` / `FileNotFoundError` for a file that cannot be read."""
    spec = embedder.feature
    decoded = audio.load_capped(path, sr=spec.sr, max_seconds=max_seconds)
    feature = np.asarray(spec.compute(decoded.samples))
    cut, starts = windows(spec.pad_to(feature, embedder.window_frames),
                          embedder.window_frames)
    outputs = []
    for i in range(0, len(cut), embedder.batch_size):  # whole batches: one compilation
        batch = cut[i:i + embedder.batch_size]
        short = embedder.batch_size - len(batch)
        if short:
            batch = np.concatenate([batch, np.repeat(batch[-1:], short, axis=0)])
        emb, tags = embedder.forward(batch)
        outputs.append((emb[:len(batch) - short], tags[:len(batch) - short]))
    emb = np.concatenate([o[0] for o in outputs]).astype(np.float32)
    tags = np.concatenate([o[1] for o in outputs]).astype(np.float32)
    if not (np.all(np.isfinite(emb)) and np.all(np.isfinite(tags))):
        raise audio.AudioDecodeError(f"the model gave non-finite values for '{path}'")
    per_frame = 1.0 if spec.is_waveform else spec.hop_length
    return {"embeddings": emb, "taggram": tags,
            "starts": (starts * per_frame / spec.sr).astype(np.float64)}


def _stamp(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return f"{os.path.abspath(path)}|missing"


def _npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _kept(part: str, stamp: str) -> Optional[Dict[str, np.ndarray]]:
    """A finished file's kept result, when it is there, readable and of the same file."""
    try:
        with np.load(part, allow_pickle=False) as z:
            if str(z["stamp"]) != stamp:
                return None
            return {k: z[k] for k in ("embeddings", "taggram", "starts")}
    except Exception:  # noqa: BLE001 - damaged (EOFError, BadZipFile, ...): embed again
        return None


def run(embedder: Embedder, files: Sequence[str], out: str, *, max_seconds: float,
        progress: Callable = lambda it, **kw: it) -> Dict[str, np.ndarray]:
    """Embeds `files` into `out` (see the module's docstring) and returns its arrays."""
    partial = f"{out}.partial"
    folder = os.path.join(partial, embedder.identity(max_seconds))
    os.makedirs(folder, exist_ok=True)
    rows: List[Tuple[str, Dict]] = []
    failed: List[Tuple[str, str]] = []
    for path in progress(files, total=len(files), unit="file", desc="embedding"):
        stamp = _stamp(path)
        part = os.path.join(folder, hashlib.sha256(stamp.encode()).hexdigest()[:24] + ".npz")
        result = _kept(part, stamp)
        if result is None:
            try:
                result = embed_file(embedder, path, max_seconds)
            except (audio.AudioDecodeError, FileNotFoundError, IsADirectoryError,
                    errors.UserError) as e:  # UserError: e.g. too short for the front end
                failed.append((path, str(e)))
                continue
            strict_json.write_bytes(part, _npz_bytes({**result, "stamp": np.array(stamp)}))
        rows.append((path, result))
    if rows:
        emb = [r["embeddings"] for _, r in rows]
        tags = [r["taggram"] for _, r in rows]
        arrays = {
            "files": np.array([p for p, _ in rows], dtype=str),
            "clip_mean": np.stack([e.mean(0) for e in emb]),
            "clip_max": np.stack([e.max(0) for e in emb]),
            "clip_tags": np.stack([t.mean(0) for t in tags]),
            "window_embeddings": np.concatenate(emb), "taggram": np.concatenate(tags),
            "window_file": np.concatenate([np.full(len(e), i, np.int64)
                                           for i, e in enumerate(emb)]),
            "window_start_seconds": np.concatenate([r["starts"] for _, r in rows]),
        }
    else:
        arrays = {"files": np.array([], dtype=str)}
    arrays.update(tag_names=np.array(embedder.tag_names, dtype=str),
                  failed_files=np.array([p for p, _ in failed], dtype=str),
                  failed_reasons=np.array([r for _, r in failed], dtype=str),
                  model=np.array(embedder.name))
    strict_json.write_bytes(out, _npz_bytes(arrays))
    shutil.rmtree(partial, ignore_errors=True)
    return arrays


def main(argv=None) -> int:
    from tqdm import tqdm

    from jaxgenre.predict import expand

    parser = argparse.ArgumentParser(prog="python -m jaxgenre.embed",
                                     description="Embeddings and tags of audio files.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help=f"a pretrained tagger: {', '.join(PRETRAINED) or 'none'}")
    which.add_argument("--workdir", help="folder of a trained run, whose model to use")
    parser.add_argument("--out", required=True, help="the .npz file to write")
    parser.add_argument("--max_seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="embed at most the first this many seconds of each file "
                             "(default %(default)g)")
    parser.add_argument("--checkpoint", help="with --model=panns_cnn14: your own CNN14 "
                        "weights (a .pth path) instead of the published file")
    parser.add_argument("--checkpoint_sha256", help="the sha256 --checkpoint must have")
    parser.add_argument("paths", nargs="+", help="audio files or folders")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        raise errors.UserError(f"--max_seconds must be a positive number of seconds, got "
                               f"{args.max_seconds:g}")
    if not args.out.endswith(".npz"):
        raise errors.UserError(f"--out={args.out} must name a .npz file")
    if args.model is not None and args.model not in PRETRAINED:
        raise errors.UserError(f"--model={args.model} is not a pretrained tagger; there are: "
                               f"{', '.join(PRETRAINED) or 'none'}")
    own = {"checkpoint": args.checkpoint, "sha256": args.checkpoint_sha256}
    if (args.checkpoint or args.checkpoint_sha256) and (
            args.model != "panns_cnn14" or not args.checkpoint):
        raise errors.UserError("--checkpoint (with an optional --checkpoint_sha256) goes with "
                               "--model=panns_cnn14 only")
    embedder = (PRETRAINED[args.model](**({k: v for k, v in own.items() if v}))
                if args.model else from_run(args.workdir))
    files = expand(args.paths)
    if not files:
        raise errors.UserError(f"no audio files in {' '.join(args.paths)}")
    arrays = run(embedder, files, args.out, max_seconds=args.max_seconds,
                 progress=lambda it, **kw: tqdm(it, leave=False, **kw))
    for path, reason in zip(arrays["failed_files"], arrays["failed_reasons"]):
        print(f"{path}: ERROR {reason}", file=sys.stderr)
    print(f"{len(arrays['files'])} files embedded, {len(arrays['failed_files'])} could not "
          f"be read; wrote {args.out}")
    return 0 if len(arrays["files"]) else 1


if __name__ == "__main__":
    from jaxgenre import cli

    cli.run(main)
