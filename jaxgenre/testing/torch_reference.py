"""Import torchvision as the reference for parity tests and speed comparisons.

Why this exists: the pinned reference pair (``requirements-parity.txt``) is torch 2.13.0's
CPU wheel (~1 GB installed) with torchvision 0.28.0 from PyPI. PyPI only carries CUDA builds
of torchvision, whose compiled extension (``torchvision/_C.so``: nms, roi_align, image
decoding) links against CUDA torch and does not load beside the CPU wheel. torchvision then
fails at import, in ``torchvision._meta_registrations``, which registers shape functions for
those compiled operators ("operator torchvision::nms does not exist").

jaxgenre uses only torchvision's pure-Python model definitions (ResNet-18, EfficientNetV2-S),
which never call those operators. So when, and only when, the import fails with exactly that
error, the import is retried with the meta registrations skipped. A working torchvision (a
matching CUDA or CPU pair) is imported untouched. The alternative pair, torch 2.14.1 +
torchvision 0.29.1, imports normally but needs ~8 GB of CUDA libraries in the venv, which
overflowed CI's disk (BUILD_NOTES.md, "Dependencies").

Never imported by ``import jaxgenre``.
"""

from __future__ import annotations

import sys
import types

_SKIPPED = "torchvision._meta_registrations"


def import_torchvision():
    """Return the ``torchvision`` module, working around a CPU torch + CUDA torchvision pair."""
    try:
        import torchvision
        return torchvision
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]  # drop the half-imported package before the retry
    sys.modules[_SKIPPED] = types.ModuleType(_SKIPPED)
    import torchvision
    return torchvision
