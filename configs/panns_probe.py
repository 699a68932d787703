"""A linear probe of PANNs' CNN14 pretrained on AudioSet (Kong et al. 2020; 527 sound
classes, music genres among them): its backbone frozen (inference mode, weights as
loaded), a new head trained on its 2048-d embedding (configs/base.panns_transfer).
Needs PANNs' 327 MB checkpoint, fetched from Zenodo into $TORCH_HOME/hub/checkpoints
(md5-checked) on first use, or --config.model.checkpoint=PATH."""

from configs import base


def get_config():
    return base.panns_transfer(probe=True)
