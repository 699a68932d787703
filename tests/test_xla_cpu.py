"""jaxgenre's CPU XLA setting (xla_cpu.py): `apply_cpu_flags()` (launch.py's explicit
call) takes 2-D convolutions away from YNNPACK — read back from XLA's own compiled
program — and leaves XLA_FLAGS alone when asked to, when the user set the option, or on
an untested jaxlib; `import jaxgenre` alone changes nothing."""

import os
import subprocess
import sys

from jaxgenre import xla_cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Sets `text` to the compiled program of one 3x3 convolution (big enough for YNNPACK
# to take it); run in child processes and in this one.
COMPILED_CONV = """
import jax, jax.numpy as jnp
conv = lambda x, w: jax.lax.conv_general_dilated(
    x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
text = (jax.jit(conv).lower(jnp.ones((2, 16, 16, 32)), jnp.ones((3, 3, 32, 32)))
        .compile().as_text())
"""


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT)}
    environ.update(env, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                          text=True, timeout=300, check=True)


APPLY = "import jaxgenre.xla_cpu; jaxgenre.xla_cpu.apply_cpu_flags()\n"


def compiled_conv(**env) -> str:
    return run_python(APPLY + COMPILED_CONV + "print(text)", **env).stdout


def test_importing_jaxgenre_changes_no_flag_and_keeps_xlas_default():
    out = run_python("import os, jaxgenre, jaxgenre.experiments, jaxgenre.models\n"
                     + COMPILED_CONV + "print(os.environ.get('XLA_FLAGS')); print(text)").stdout
    assert out.startswith("None\n") and "ynn_fusion" in out


def test_apply_cpu_flags_keeps_convolutions_out_of_ynnpack():
    assert "ynn_fusion" in compiled_conv(**{xla_cpu.OPT_OUT: "1"}), \
        "this jaxlib no longer sends convolutions to YNNPACK: xla_cpu.py may be obsolete"
    with_jaxgenre = compiled_conv()
    assert "ynn_fusion" not in with_jaxgenre and " convolution(" in with_jaxgenre


def test_this_test_process_runs_with_the_flag():
    namespace = {}
    exec(COMPILED_CONV, namespace)
    assert "ynn_fusion" not in namespace["text"] and xla_cpu.FLAG in os.environ["XLA_FLAGS"]


def test_a_users_own_ynn_setting_and_other_flags_are_kept():
    own = "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"
    out = run_python(APPLY + "import os; print(os.environ['XLA_FLAGS'])",
                     XLA_FLAGS=own).stdout.strip()
    assert out == own
    out = run_python(APPLY + "import os; print(os.environ['XLA_FLAGS'])",
                     XLA_FLAGS="--xla_force_host_platform_device_count=2").stdout.strip()
    assert out == f"--xla_force_host_platform_device_count=2 {xla_cpu.FLAG}"


def test_skipped_on_an_untested_jaxlib_or_on_request():
    assert xla_cpu.cpu_flags_skipped({}, xla_cpu.TESTED_JAXLIB[0]) is None
    assert "jaxlib 9.9.9" in xla_cpu.cpu_flags_skipped({}, "9.9.9")
    assert xla_cpu.OPT_OUT in xla_cpu.cpu_flags_skipped({xla_cpu.OPT_OUT: "1"},
                                                        xla_cpu.TESTED_JAXLIB[0])
    environ = {}
    assert xla_cpu.apply_cpu_flags(environ) is None and environ["XLA_FLAGS"] == xla_cpu.FLAG


def test_applying_after_jax_started_warns_with_the_fix():
    code = ("import warnings, jax\njax.numpy.ones(1).block_until_ready()\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n    " + APPLY +
            "print('|'.join(str(w.message) for w in caught))")
    out = run_python(code).stdout
    assert "called after JAX started its CPU backend" in out and xla_cpu.FLAG in out
    assert "called after" not in run_python(
        "import warnings\nwarnings.simplefilter('error')\n" + APPLY + "import jax\n"
        "jax.numpy.ones(1).block_until_ready()\nprint('ok')").stdout

