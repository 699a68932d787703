"""jaxgenre's entry point: `python launch.py --config=configs/<name>.py --workdir=DIR`.

One study cell (`configs/resnet_mel.py`, ...) trains on the configured data (the
built-in synthetic set by default), keeps the best validation checkpoint, evaluates it
on the test part beside the study's numbers and writes results, figures and
checkpoints into the work directory; running the same command again resumes.
`configs/study_grid.py` runs all nine cells and writes results.md / results.csv.

Config values can be overridden on the command line with dotted flags, e.g.
`--config.data.source=folder --config.data.root=/path/to/gtzan`; a mistyped key fails
and names the key.

Several processes (hosts) train one model together when each is started with the same
command plus `--num_processes=N --process_id=I --coordinator_address=HOST:PORT` (or
`--distributed` under SLURM / on a TPU pod slice); each loads only its share of every
batch. See the README.
"""

import logging as py_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, e.g. configs/resnet_mel.py.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for all outputs "
                               "(default: runs/<config file name>).")
# Multi-process (multi-host) runs: one process per host, or several on one machine.
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 in a multi-process run "
    "(or JAX_COORDINATOR_ADDRESS).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run "
                                      "(or JAX_NUM_PROCESSES; default 1).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based "
                                   "(or JAX_PROCESS_ID).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Let jax.distributed.initialize() find the cluster itself "
    "(SLURM, Open MPI, Cloud TPU pod slices).")
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:  # hide JAX's INFO lines (e.g. "no TPU")
        logging.set_verbosity(logging.WARNING)
    py_logging.captureWarnings(False)  # absl would swallow Python warnings: show them
    from jaxgenre import cli, errors

    cli.shorten_library_logs()  # orbax's failed-write tracebacks: one line each
    from configs import base

    # Every key a config file (or one not derived from configs/base.py) leaves out.
    config = base.with_defaults(_CONFIG.value)
    if config.cpu_xla_flags:
        # Chosen here, visibly, before JAX starts: XLA's own CPU convolutions instead of
        # YNNPACK's (ResNet-18 train step 1.6x faster on the CPU, BUILD_NOTES "Speed
        # work"); GPUs and TPUs ignore the flag. --config.cpu_xla_flags=False opts out.
        from jaxgenre import xla_cpu

        xla_cpu.apply_cpu_flags()
    from jaxgenre import parallel

    try:
        parallel.initialize_distributed(  # before any JAX computation
            coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value, auto=_DISTRIBUTED.value)
    except ValueError as e:  # a flag missing or out of range: a usage error, not a crash
        raise app.UsageError(str(e)) from None
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    workdir = _WORKDIR.value or os.path.join(
        "runs", os.path.splitext(os.path.basename(config_file))[0])
    from jaxgenre import validation

    try:
        validation.check_config(config)  # before the training modules load: a refusal is quick
        from jaxgenre import experiments
        from jaxgenre.checkpoint import workdir_lock

        # One run per work directory (`workdir_lock`): process 0 takes the lock and every
        # process learns its verdict before any other collective, so a refusal stops all.
        workdir_lock.hold_everywhere(workdir)
        if config.grid:
            experiments.run_grid(config, workdir)
        else:  # one run, or every fold of a k-fold split
            experiments.run(config, workdir)
    except errors.UserError as e:  # a config value, path, data folder or weights file
        sys.exit(errors.report(e))


if __name__ == "__main__":
    app.run(main)
