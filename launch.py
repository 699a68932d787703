"""jaxgenre's entry point: `python launch.py --config=configs/<name>.py --workdir=DIR`.

Config values can be overridden on the command line with dotted flags, e.g.
`--config.features.kind=mfcc`; a mistyped key fails and names the key.

Until training lands (issue 6 replaces this with train.train_and_evaluate), the job
computes the study's four features on built-in test signals, checks them against
librosa, and writes a summary and a figure into the work directory; then it prepares
the configured data set (the built-in synthetic genres by default): data report, split,
feature cache, segments, everything a training run starts from.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from jaxgenre import feature_summary
from jaxgenre.data import prepare

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, e.g. configs/base.py.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/features", "Directory for all outputs.")
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:  # hide JAX's INFO lines (e.g. "no TPU")
        logging.set_verbosity(logging.WARNING)
    feature_summary.run(_CONFIG.value, _WORKDIR.value)
    data = prepare.prepare_data(_CONFIG.value, _WORKDIR.value)
    print(prepare.describe(data))


if __name__ == "__main__":
    app.run(main)
