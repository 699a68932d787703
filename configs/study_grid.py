"""All nine model x feature cells of the study's tables 1-3, one after another, then
results.md / results.csv / confusion_grid.png beside the study's numbers."""

from configs import base


def get_config():
    config = base.get_config()
    config.grid = True  # launch.py runs jaxgenre.experiments.run_grid instead of one training
    return config
