"""Training and evaluation: the loop (`train`), the jitted steps and optimiser (`steps`),
augmentation inside the train step (`augment`), which epoch is kept (`selection`), the
weight average (`weight_average`) and inference over a part's segments (`evaluate`)."""
