"""models.pth reads torch's .pth files without torch: the same arrays as torch.load, the
same converted Flax variables as the torch path, and no global beyond tensors and
containers (a crafted pickle is refused before anything runs)."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

from jaxgenre.models import pth, torchvision_port
from jaxgenre.testing import torch_reference

torchvision = torch_reference.import_torchvision()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tensors_of_every_dtype_and_layout_equal_torch_load(tmp_path):
    torch.manual_seed(0)
    base = torch.randn(4, 6)
    state = {
        "float": torch.randn(3, 5), "double": torch.randn(2, dtype=torch.float64),
        "half": torch.randn(7).half(), "bfloat16": torch.randn(3).bfloat16(),
        "long": torch.tensor(41), "int": torch.arange(5, dtype=torch.int32),
        "bool": torch.tensor([True, False]), "uint8": torch.arange(3, dtype=torch.uint8),
        "transposed": base.t(), "strided": base[1:, ::2],  # views share one storage
        "param": torch.nn.Parameter(torch.randn(2, 2)), "scalar": torch.tensor(2.5),
    }
    path = str(tmp_path / "mixed.pth")
    torch.save(state, path)
    ours = pth.load_state_dict(path)
    theirs = torch.load(path, weights_only=True)
    assert list(ours) == list(theirs)
    for name, tensor in theirs.items():
        expected = tensor.detach().float().numpy() if name == "bfloat16" else tensor.detach().numpy()
        got = ours[name].astype(np.float32) if name == "bfloat16" else ours[name]
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_read_without_torch_gives_the_torch_paths_variables(tmp_path):
    """The test the issue asks for: torch.save'd ResNet-18, read where `import torch`
    fails, converts to exactly what the torch-loaded state dict converts to."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    for m in net.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = str(tmp_path / "resnet18-f37072fd.pth")
    torch.save(net.state_dict(), path)
    out = str(tmp_path / "variables.npz")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import jax, numpy as np
        from jaxgenre.models import pth, torchvision_port
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch importable")
        variables = torchvision_port.convert(pth.load_state_dict({path!r}), "resnet18")
        flat = {{"/".join(str(getattr(k, "key", k)) for k in p): np.asarray(v)
                 for p, v in jax.tree_util.tree_leaves_with_path(variables)}}
        np.savez({out!r}, **flat)
        assert "torch" not in [m.split(".")[0] for m in sys.modules if sys.modules[m]]
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr
    expected = torchvision_port.convert(net.state_dict(), "resnet18")
    import jax
    flat = {"/".join(str(getattr(k, "key", k)) for k in p): np.asarray(v)
            for p, v in jax.tree_util.tree_leaves_with_path(expected)}
    got = np.load(out)
    assert sorted(got.files) == sorted(flat)
    for name, value in flat.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def _zip_with_pickle(path: str, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")


class _Shell:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("payload", [
    pickle.dumps({"w": _Shell()}, protocol=2),
    pickle.dumps({"w": io.BytesIO(b"x")}, protocol=2),  # any other class
    b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.",  # a hand-written GLOBAL + REDUCE
])
def test_a_pickle_asking_for_any_other_global_is_refused(tmp_path, payload):
    path = str(tmp_path / "evil.pth")
    _zip_with_pickle(path, payload)
    with pytest.raises(pth.UnsafeCheckpoint, match="evil.pth' asks to load .*refused"):
        pth.load_state_dict(path)


def test_damaged_files_are_named(tmp_path):
    path = str(tmp_path / "cut.pth")
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 truncated")
    with pytest.raises(pth.UnreadableCheckpoint, match="cut.pth' is not a readable torchvision"):
        pth.load_state_dict(path)
    torch.save({"w": torch.randn(3)}, path)
    with zipfile.ZipFile(path) as z:  # drop the storage the pickle points at
        kept = {n: z.read(n) for n in z.namelist() if "/data/" not in n}
    with zipfile.ZipFile(path, "w") as z:
        for n, b in kept.items():
            z.writestr(n, b)
    with pytest.raises(pth.UnreadableCheckpoint, match="lacks storage"):
        pth.load_state_dict(path)


def test_the_hub_file_must_have_the_specs_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), str(hub / "resnet18-f37072fd.pth"))
    with pytest.raises(ValueError, match="has sha256 [0-9a-f]{64}, not torchvision's "
                                         "f37072fd47e89c5e"):
        torchvision_port.load_imagenet("resnet18", 10)


def test_pinned_digests_agree_with_torchvisions_published_file_names():
    """torch hub names each file <arch>-<first 8 hex of its sha256>.pth; the specs pin
    the whole digest, which must extend that prefix."""
    from jaxgenre import models

    pinned = [s.imagenet for s in models.REGISTRY.values() if s.imagenet]
    assert len(pinned) == 2
    for ckpt in pinned:
        prefix = ckpt.file.rsplit("-", 1)[1].removesuffix(".pth")
        assert len(ckpt.sha256) == 64 and ckpt.sha256.startswith(prefix), ckpt.file
        assert ckpt.url.endswith("/" + ckpt.file)
