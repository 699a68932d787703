"""A linear probe of musicnn pretrained on the Million Song Dataset (50 tags, many of
them genres): its backbone frozen (inference mode, weights as loaded), a new head
trained on its 200-d penultimate layer (configs/base.musicnn_transfer). Needs
musicnn's weights: `pip install --no-deps -r requirements-musicnn.txt`."""

from configs import base


def get_config():
    return base.musicnn_transfer(probe=True)
