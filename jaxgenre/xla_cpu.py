"""XLA settings for the CPU, applied explicitly: launch.py calls `apply_cpu_flags()`
before JAX starts (unless `--config.cpu_xla_flags=False`), and so do the benchmarks;
importing jaxgenre never touches `XLA_FLAGS`.

The pinned jaxlib (0.10.2) hands 2-D convolutions on the CPU to YNNPACK by default
(`--xla_cpu_experimental_ynn_fusion_type` includes `individual_convolution`). For the
convolutions these models train, YNNPACK is the slow choice: a ResNet-18 3x3 layer's
kernel gradient takes 3.8x as long as with XLA's own (Eigen) convolution, and
ResNet-18's train step runs 1.6x faster without it (`benchmarks/xla_cpu_flags.py`).
So jaxgenre removes that one entry, keeping YNNPACK for dots and reductions, by adding
to `XLA_FLAGS` before JAX creates its CPU backend.

It leaves `XLA_FLAGS` alone when the user already set a YNN fusion type there, when
`JAXGENRE_KEEP_XLA_FLAGS` is set, or when the installed jaxlib is not one this was
measured on (XLA aborts the process on a flag it does not know). The flag only matters
to the CPU backend; GPU and TPU runs ignore it.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import MutableMapping, Optional

FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
OPT_OUT = "JAXGENRE_KEEP_XLA_FLAGS"
TESTED_JAXLIB = ("0.10.2",)


def cpu_flags_skipped(environ: MutableMapping[str, str], jaxlib_version: str) -> Optional[str]:
    """Why FLAG should not be added to `environ['XLA_FLAGS']`, or None if it should."""
    if environ.get(OPT_OUT):
        return f"{OPT_OUT} is set"
    if "xla_cpu_experimental_ynn_fusion_type" in environ.get("XLA_FLAGS", ""):
        return "XLA_FLAGS already sets xla_cpu_experimental_ynn_fusion_type"
    if jaxlib_version not in TESTED_JAXLIB:
        return f"jaxlib {jaxlib_version} is not one the flag was tested with {TESTED_JAXLIB}"
    return None


def apply_cpu_flags(environ: MutableMapping[str, str] = os.environ) -> Optional[str]:
    """Add FLAG to XLA_FLAGS unless `cpu_flags_skipped` says why not (returned). Warns
    when JAX's CPU backend already runs, since XLA reads the flags only when it starts."""
    import jaxlib

    skipped = cpu_flags_skipped(environ, jaxlib.__version__)
    if skipped:
        return skipped
    environ["XLA_FLAGS"] = f"{environ.get('XLA_FLAGS', '')} {FLAG}".strip()
    if environ is os.environ and _cpu_backend_running():
        warnings.warn(
            "xla_cpu.apply_cpu_flags() was called after JAX started its CPU backend, so XLA "
            "keeps running convolutions through YNNPACK and training is ~1.6x slower. Call "
            f"it before using JAX, or start Python with XLA_FLAGS='{FLAG}'.",
            stacklevel=3)
    return None


def _cpu_backend_running() -> bool:
    if "jax" not in sys.modules:  # no backend without JAX; and importing it here costs ~0.5 s
        return False
    try:
        from jax._src import xla_bridge
        if not xla_bridge.backends_are_initialized():
            return False
        import jax
        return jax.default_backend() == "cpu"
    except Exception:  # private API moved: say nothing rather than fail the import
        return False
