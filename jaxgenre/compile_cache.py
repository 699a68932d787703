"""Compiled once: JAX's persistent compilation cache, and the time spent compiling.

`enable(setting, data_home)` points JAX's persistent compilation cache
(`jax_compilation_cache_dir`) at `config.train.compilation_cache`: "auto" is
`<data home>/compile_cache/<fingerprint>`, a path is that folder, "off" turns it off. The
fingerprint folder holds the jax version, the backend and, on the CPU, a digest of the
processor's feature flags: XLA compiles CPU code for the host's instruction set, so a
data home shared by machines of other processors must not hand them its executables.
Executables that took at least `config.train.compilation_cache_min_seconds` to compile
(JAX's default, 1 s: train and eval steps, not the many small jits) are kept, so a
second seed, cell or resumed run loads what the first one compiled. The first run of a
process sets the folder; JAX reads the setting once. A folder that cannot be made
leaves the cache off, with a warning.

`CLOCK` adds up, from JAX's own monitoring events, the seconds spent tracing, lowering
and compiling, and the executables loaded from the cache: training reports an epoch's
`compile_seconds` apart from its `seconds`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import warnings
from typing import Optional

import jax

# JAX's events (jax._src.dispatch / compiler / compilation_cache) that time a compile.
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_retrieval_time_sec"
_enabled: Optional[str] = None


@dataclasses.dataclass
class Reading:
    """What the clock had counted at one moment: compile seconds and cache hits."""
    seconds: float = 0.0
    cache_hits: int = 0

    def since(self, earlier: "Reading") -> "Reading":
        return Reading(self.seconds - earlier.seconds, self.cache_hits - earlier.cache_hits)


class _Clock:
    """Listens to JAX's compile events (registered once per process, thread-safe)."""

    def __init__(self):
        self._lock, self._total, self._registered = threading.Lock(), Reading(), False

    def _listen(self, event: str, seconds: float, **_) -> None:
        if event in _COMPILE_EVENTS:
            with self._lock:
                self._total.seconds += seconds
        elif event == _CACHE_HIT_EVENT:
            with self._lock:
                self._total.cache_hits += 1

    def read(self) -> Reading:
        if not self._registered:
            jax.monitoring.register_event_duration_secs_listener(self._listen)
            self._registered = True
        with self._lock:
            return dataclasses.replace(self._total)


CLOCK = _Clock()


def fingerprint() -> str:
    """jax version, backend and (CPU) a digest of the processor's flags: the folder that
    keeps executables apart which another machine or jax could not run."""
    backend = jax.default_backend()
    parts = [f"jax{jax.__version__}", backend]
    if backend == "cpu":
        flags = ""
        try:
            with open("/proc/cpuinfo") as f:
                flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
        except OSError:
            pass
        import platform
        parts.append(hashlib.sha256((platform.machine() + flags).encode()).hexdigest()[:12])
    return "-".join(parts)


def folder(setting: Optional[str], data_home: str) -> Optional[str]:
    """Where `config.train.compilation_cache = setting` keeps executables (None: off)."""
    if not setting or setting == "off":
        return None
    if setting == "auto":
        return os.path.join(data_home, "compile_cache", fingerprint())
    return os.path.abspath(os.path.expanduser(setting))


def enable(setting: Optional[str], data_home: str, *, min_seconds: float = 1.0
           ) -> Optional[str]:
    """Turns the persistent cache on at `folder(setting, data_home)` for this process,
    keeping executables that took `min_seconds` or more to compile (the first call
    decides; later ones return the folder in use). None when off."""
    global _enabled
    CLOCK.read()  # listening from before the first compile
    if _enabled is not None:
        return _enabled or None
    path = folder(setting, data_home)
    try:
        if path is not None:
            os.makedirs(path, exist_ok=True)
    except OSError as e:
        warnings.warn(f"compilation cache off: cannot make {path} ({e.strerror or e}); set "
                      f"config.train.compilation_cache to a writable folder, or 'off' to "
                      f"silence this")
        path = None
    _enabled = path or ""
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_seconds))
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
