"""All nine model x feature cells of the study's tables 1-3, one after another, then the
waveform row and, when musicnn's weights are installed, the music-pretrained cells
(musicnn probe and fine-tune); then results.md / results.csv / confusion_grid.png beside
the study's numbers, with the study's claims and "music pretraining beats ImageNet
pretraining" tested."""

from configs import base


def get_config():
    config = base.get_config()
    config.grid = True  # launch.py runs jaxgenre.experiments.run_grid instead of one training
    return config
