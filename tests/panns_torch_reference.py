"""torch references of PANNs' CNN14 for the parity tests.

- `authors_cnn14()`: the authors' own `Cnn14` from panns_inference's `models.py`
  (pinned in requirements-parity.txt; its front end is torchlibrosa's), loaded without
  the package's `__init__`, which would download AudioSet's label file. Only the paper's
  widths: the full-size tests compare with it.
- `Cnn14(width=...)`: the same network written here from the paper with torch's
  layers, at any width, so most tests run small; a test checks that at full width it
  computes what the authors' module computes on the same state dict.
Their module names are those of PANNs' released state dicts, so `torch.save({'model':
state_dict()})` writes a file laid out as `Cnn14_mAP=0.431.pth` is.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn
from torchlibrosa.stft import LogmelFilterBank, Spectrogram


def authors_cnn14(classes: int = 527) -> nn.Module:
    """panns_inference's `Cnn14` at the 32 kHz checkpoint's settings, in eval mode."""
    if "panns_inference.models" not in sys.modules:
        folder = importlib.metadata.distribution("panns-inference").locate_file(
            "panns_inference")
        package = types.ModuleType("panns_inference")  # its __init__ fetches labels
        package.__path__ = [str(folder)]
        sys.modules["panns_inference"] = package
    models = importlib.import_module("panns_inference.models")
    return models.Cnn14(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64,
                        fmin=50, fmax=14000, classes_num=classes).eval()


class ConvBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.bn2 = nn.BatchNorm2d(outputs)

    def forward(self, x, pool: bool):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, 2) if pool else x


class Cnn14(nn.Module):
    """`forward(waveform (batch, samples) at sr)` → (logits, embedding); `width` 64 is
    the paper's."""

    def __init__(self, *, classes: int = 527, width: int = 64, sr: int = 32000,
                 n_fft: int = 1024, hop_length: int = 320, n_mels: int = 64,
                 fmin: float = 50.0, fmax: float = 14000.0):
        super().__init__()
        self.spectrogram_extractor = Spectrogram(
            n_fft=n_fft, hop_length=hop_length, win_length=n_fft, window="hann",
            center=True, pad_mode="reflect", freeze_parameters=True)
        self.logmel_extractor = LogmelFilterBank(
            sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, ref=1.0, amin=1e-10,
            top_db=None, freeze_parameters=True)
        self.bn0 = nn.BatchNorm2d(n_mels)
        maps = [1] + [width * 2 ** i for i in range(6)]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(maps[i], maps[i + 1]))
        self.fc1 = nn.Linear(maps[-1], width * 32)
        self.fc_audioset = nn.Linear(width * 32, classes)

    def logmel(self, waveform):
        return self.logmel_extractor(self.spectrogram_extractor(waveform))

    def forward(self, waveform):
        return self.from_logmel(self.logmel(waveform))

    def from_logmel(self, x):
        """(logits, embedding) of log-mel images (batch, 1, time, mel)."""
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=i < 5)
            x = F.dropout(x, 0.2, self.training)
        x = x.mean(dim=3)                            # over frequency: (batch, maps, time)
        x = x.max(dim=2).values + x.mean(dim=2)
        x = F.dropout(x, 0.5, self.training)
        embedding = F.relu(self.fc1(x))
        return self.fc_audioset(embedding), embedding


def randomised(model: nn.Module, seed: int) -> nn.Module:
    """`model` with random batch-norm statistics and affine parameters too (fresh ones
    are 0 / 1, which would hide a swapped mean and variance), in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
    return model.eval()
