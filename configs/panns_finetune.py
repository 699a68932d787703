"""PANNs' CNN14 pretrained on AudioSet, fine-tuned whole: the recipe's optimiser,
schedule and augmentation, a new head at the recipe's learning rate and the backbone at
a tenth of it (configs/base.panns_transfer). Needs PANNs' checkpoint, as
configs/panns_probe.py says. 35 GFLOPs per 10 s window forward (XLA's count), about
three times that per training window: a GPU's job."""

from configs import base


def get_config():
    return base.panns_transfer(probe=False)
