"""musicnn pretrained on the Million Song Dataset, fine-tuned: every layer trained, the
backbone at a tenth of the new head's learning rate, with the recipe's augmentation,
schedule, label smoothing and epoch selection (configs/base.musicnn_transfer). Needs
musicnn's weights: `pip install --no-deps -r requirements-musicnn.txt`."""

from configs import base


def get_config():
    return base.musicnn_transfer(probe=False)
