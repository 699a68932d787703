"""Test- and demo-only code, apart from what training, evaluation and predict use:
`reference` (librosa's computations, the features' reference), `signals` (built-in test
signals) and `torch_reference` (torchvision's models, for parity; needs torch)."""
