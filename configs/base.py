"""The one full jaxgenre config. Every other config file derives from it and states
only what differs. Names follow librosa (audio) and optax (optimisation)."""

import copy
from typing import Optional

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
    config = config_dict.ConfigDict()
    config.seed = 0
    # N: train the cell with seeds seed, seed + 1, ..., seed + N - 1 on one split, each in
    # <workdir>/seed_<k>/, and report mean ± std and the seed ensemble (the grid too).
    config.seeds = config_dict.placeholder(int)

    # True: launch.py runs the study's grid of cells (configs/study_grid.py) instead of
    # one training run.
    config.grid = False
    # The XLA flag that keeps CPU convolutions out of YNNPACK (jaxgenre/xla_cpu.py; the
    # ResNet-18 train step 1.6x faster on the CPU). launch.py applies it before JAX
    # starts; importing jaxgenre never changes XLA_FLAGS.
    config.cpu_xla_flags = True

    config.data = config_dict.ConfigDict()
    config.data.source = "synthetic"  # synthetic | folder | gtzan, fma (fetched) | tfds
    # Where fetched data goes: None is $JAXGENRE_DATA, else ~/.cache/jaxgenre.
    config.data.home = config_dict.placeholder(str)
    config.data.root = config_dict.placeholder(str)
    config.data.tfds_dir = config_dict.placeholder(str)
    config.data.cache_dir = config_dict.placeholder(str)  # None: <workdir>/cache
    # float16 halves the feature cache (FMA-large's mel cache: ~70 GB in float32).
    config.data.cache_dtype = "float32"
    # random | kfold | fault_filtered | official (FMA's own); None: the source's default
    # (official for FMA, random otherwise).
    config.data.split = config_dict.placeholder(str)
    config.data.fractions = (0.8, 0.1, 0.1)
    config.data.folds = 10
    config.data.fold = config_dict.placeholder(int)  # kfold: None runs every fold
    config.data.clip_seconds = 30.0
    # Train on 3 s segments, evaluate whole clips by averaging their segments' probabilities.
    config.data.segment_seconds = 3.0
    config.data.segment_hop_seconds = config_dict.placeholder(float)
    config.data.min_seconds = 10.0
    # data.source='gtzan': mirrors tried in order (URLs, file:// URLs or paths) and the
    # tarball's sha256: the digest torchaudio's datasets/gtzan.py pins for genres.tar.gz
    # (mirdata's datasets/gtzan_genre.py pins its md5, 5b3d6dddb579ab49814ab86dba69e7c7;
    # BUILD_NOTES, "Real data"). The original host (opihi.cs.uvic.ca) has been dead since
    # 2023; the Hugging Face dataset marsyas/gtzan serves the same file.
    config.data.gtzan = config_dict.ConfigDict()
    config.data.gtzan.urls = (
        "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz",
        "http://opihi.cs.uvic.ca/sound/genres.tar.gz")
    config.data.gtzan.sha256 = "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"
    # data.source='fma': the subset, the folders (URLs, file:// URLs or paths) holding
    # fma_metadata.zip and fma_<subset>.zip, and their sha1 from the FMA README
    # (github.com/mdeff/fma).
    config.data.fma = config_dict.ConfigDict()
    config.data.fma.subset = "small"  # small | medium | large
    config.data.fma.mirrors = ("https://os.unil.cloud.switch.ch/fma/",)
    config.data.fma.sha1 = config_dict.ConfigDict({
        "metadata": "f0df49ffe5f2a6008d7dc83c6915b31835dfe733",
        "small": "ade154f733639d52e35e32f5593efe5be76c6d70",
        "medium": "c67b69ea232021025fca9231fc1c7c1a063ab50b",
        "large": "497109f4dd721066b5ce5e5f250ec604dc78939e"})
    # Every archive unpacked (GTZAN, FMA, tfds_gtzan --from; jaxgenre/data/archive.py) is
    # capped: bytes actually written, members, and unpacked/packed size (per zip member
    # and overall; a 204 KB zip unpacking to 200 MB stops at ~20 MB). Sized for
    # FMA-large: fma_large.zip is ~93 GiB of mp3 (which hardly compress), ~106.6k files.
    # Members counts every file, link and folder made (folders a deep name implies too);
    # each folder counts 4096 bytes; a tar's whole stream counts against the ratio.
    # Fixed, not config: paths at most 64 names deep, tar extended headers at most 1 MiB.
    config.data.archive = config_dict.ConfigDict()
    config.data.archive.max_bytes = 200 * 2**30
    config.data.archive.max_members = 250_000
    config.data.archive.max_ratio = 100.0
    # Every fetch (jaxgenre/data/download.py): the most bytes taken when an asset's size
    # is not pinned (GTZAN's and FMA's are not; fma_large.zip, the biggest, is ~93 GiB),
    # and one transfer's deadline, which a server sending a byte now and then cannot
    # stretch (the socket timeout counts each wait only). A transfer cut off by it
    # resumes where it stopped when run again.
    config.data.download = config_dict.ConfigDict()
    config.data.download.max_bytes = 128 * 2**30
    config.data.download.deadline_seconds = 12 * 3600.0
    config.data.synthetic = config_dict.ConfigDict()
    config.data.synthetic.clips_per_class = 20
    config.data.synthetic.seconds = 30.0
    config.data.synthetic.epochs = 5
    # "hard": classes borrow each other's ingredients, per-clip effects, noise and level
    # (data/synthetic.py), a set on which recipes differ (BUILD_NOTES, the ablation).
    config.data.synthetic.variant = "standard"
    # The seed of the split and the synthetic set; None: config.seed. Fix it to train
    # several seeds on one split, e.g. for a seed ensemble (python -m jaxgenre.ensemble).
    config.data.seed = config_dict.placeholder(int)

    config.features = config_dict.ConfigDict()
    # mel | spec | mfcc | waveform, or a pretrained model's fixed front end: musicnn
    # (sr 16000, hop 256) | panns (sr 32000, hop 320)
    config.features.kind = "mel"
    config.features.sr = 22050
    config.features.n_fft = 2048
    config.features.hop_length = 512
    config.features.n_mels = 128
    config.features.n_mfcc = 20
    config.features.fmin = 0.0
    config.features.fmax = config_dict.placeholder(float)  # None: sr / 2
    config.features.top_db = 80.0
    # A float, or "max" for each clip's own peak (librosa's ref=np.max, per example).
    config.features.ref = config_dict.FieldReference(1.0, field_type=object)

    config.model = config_dict.ConfigDict()
    config.model.name = "resnet18"  # a name in jaxgenre.models.REGISTRY
    config.model.num_classes = 10
    config.model.pretrained = True  # ImageNet weights, for models whose spec has them
    # musicnn's models: pretrained on the Million Song Dataset ("MSD") or MagnaTagATune
    # ("MTT"); musicnn 0.1.0's checkpoints (requirements-musicnn.txt).
    config.model.weights = "MSD"
    # Weights of your own for the same architecture (a path or URL; for PANNs' CNN14 a
    # path), instead of torchvision's or PANNs' pinned file (fetched into
    # $TORCH_HOME/hub/checkpoints when missing).
    config.model.checkpoint = config_dict.placeholder(str)
    config.model.checkpoint_sha256 = config_dict.placeholder(str)
    config.model.dtype = "float32"
    config.model.input_size = config_dict.placeholder(tuple)  # None: native feature size
    # None: the model spec's default ('standardise' for all three); or "imagenet"
    # (models/adapter.py).
    config.model.normalisation = config_dict.placeholder(str)
    # Depthwise convolutions (EfficientNetV2-S): "auto" runs them as shifted copies on
    # the CPU (EfficientNetV2-S trains 2.5x faster there) and as XLA's grouped
    # convolution elsewhere; or "xla" / "shifted" (models/layers.conv).
    config.model.depthwise = "auto"
    # True: a probe. The backbone (everything but the model spec's `head` layers) runs in
    # inference mode — BatchNorm's running statistics, no dropout, no gradient — and its
    # weights stay as loaded; only the head trains. For models that declare it
    # (`spec.options`: musicnn, panns_cnn14).
    config.model.freeze_backbone = False

    config.optim = config_dict.ConfigDict()
    config.optim.name = "adam"
    config.optim.learning_rate = 1e-3
    config.optim.weight_decay = 0.0
    config.optim.schedule = "constant"  # constant | cosine | warmup_cosine
    config.optim.warmup_fraction = 0.05  # warmup_cosine: linear warm-up over this share of steps
    # > 0: validation, test and predict use an exponential moving average of the weights
    # (jaxgenre/training/weight_average.py). The decay warms up as min(ema_decay, (1+n)/(10+n))
    # after n steps, so it binds only after ~9/(1-ema_decay) steps (0.99: 891); before
    # that the average spans about the last n/9 steps. BatchNorm's running statistics
    # are the current weights', not averaged.
    config.optim.ema_decay = 0.0
    # The backbone's learning rate as a share of optim.learning_rate (the head's), for
    # fine-tuning pretrained weights gently: 1.0 trains every layer alike (as before
    # this key); 0 leaves the backbone's weights as they are. Needs a model spec that
    # names its head.
    config.optim.backbone_lr_scale = 1.0

    config.train = config_dict.ConfigDict()
    config.train.batch_size = 32
    # None: the study's 50 on real data (folder / tfds), data.synthetic.epochs on the
    # built-in set (sized so the README's main command runs in minutes on a laptop CPU).
    config.train.epochs = config_dict.placeholder(int)
    config.train.log_every = 10
    # TensorBoard event files in <workdir>/tensorboard (tensorboard --logdir=runs): the
    # training loss every log_every steps, every epoch's scalars, the test figures.
    config.train.tensorboard = True
    config.train.prefetch = 2  # batches placed on the devices ahead of the step (0: inline)
    config.train.checkpoint_every = 1
    config.train.keep = 3
    # Saves write in the background while training goes on (44 ms of blocking instead of
    # 386 for ResNet-18). The price: a kill in the ~0.3 s a write takes after its epoch
    # also loses that epoch. False: every save is on disk before training goes on.
    config.train.async_checkpoints = True
    config.train.label_smoothing = 0.0
    # JAX's persistent compilation cache (jaxgenre/compile_cache.py): "auto" keeps compiled
    # steps in <data home>/compile_cache/<jax version, backend, CPU>, so seeds, cells
    # and resumed runs load them instead of compiling again; a path keeps them there;
    # "off" turns it off. Steps that compiled in under compilation_cache_min_seconds are not kept.
    config.train.compilation_cache = "auto"
    config.train.compilation_cache_min_seconds = 1.0
    # Where training and evaluation windows come from (jaxgenre/data/resident.py): True
    # places every used clip's features on the devices once and cuts the windows there;
    # False streams host batches; "auto" is True on accelerators when one device's share
    # fits resident_memory_fraction of its memory, False on CPU. A table that does not
    # fit falls back to streaming with one line. Same windows, same results either way.
    config.train.resident = config_dict.FieldReference("auto", field_type=object)
    config.train.resident_memory_fraction = 0.5
    # Train (and, resident, predict) steps run per jitted call, as a lax.scan
    # (jaxgenre/training/dispatch.py): fewer host round trips on an accelerator. The
    # loss is logged per dispatch; checkpoints stay per epoch.
    config.train.steps_per_dispatch = 1
    # With config.seeds: train the seeds as one program, vmapped over their train states
    # (jaxgenre/training/vectorized.py): one compile and one step for all, the same
    # outputs; each seed's figures equal a separate run's within float rounding.
    config.train.vectorize_seeds = False
    # Which epoch is kept as the best (jaxgenre/training/selection.py): "accuracy" (the study's:
    # the first epoch reaching the highest validation clip accuracy), "accuracy_loss"
    # (ties broken by the lower validation log-loss), "loss" or "last".
    config.train.select = "accuracy"

    # Training-time augmentation (jaxgenre/training/augment.py), all off: the study used none.
    # configs/recipe_*.py turn on what the ablation in BUILD_NOTES.md found worth it.
    config.augment = config_dict.ConfigDict()
    # Each epoch cuts every training window at a random position in its clip instead of
    # the fixed tiles; crops_per_clip windows per clip (None: as many as the tiles).
    config.augment.random_crop = False
    config.augment.crops_per_clip = config_dict.placeholder(int)
    # SpecAugment masks (zeroed after normalisation); widths as fractions of the axes.
    config.augment.spec_augment = False
    config.augment.freq_masks = 2
    config.augment.freq_mask_fraction = 0.125
    config.augment.time_masks = 2
    config.augment.time_mask_fraction = 0.0625
    config.augment.mixup_alpha = 0.0  # > 0: mixup with lambda ~ Beta(alpha, alpha)
    # A random level change of up to +-gain_db dB. Both model.normalisation choices scale
    # each example on its own and remove it again: off in the recipe (BUILD_NOTES).
    config.augment.gain_db = 0.0

    config.eval = config_dict.ConfigDict()
    config.eval.batch_size = 32
    config.eval.plots = True
    # Validation and test windows overlap by this fraction of a segment (0: the study's
    # back-to-back tiles), and a clip's probability is the mean of its windows'
    # probabilities ('probability', the study's) or the normalised exp of the mean of
    # their log-probabilities ('log_probability'; BUILD_NOTES says why).
    config.eval.window_overlap = 0.0
    config.eval.clip_mean = "probability"
    return config


def with_defaults(config) -> config_dict.ConfigDict:
    """`config` (a ConfigDict, or the dict a run.json holds) with every key of
    `get_config()` it lacks set to that default, so the code reads each setting as
    `config.section.key` and never restates a default: a run.json written before a key
    existed, and a config file not derived from this one, read like any other. Keys it
    has keep their values. A ConfigDict is copied whole (its lock, field types and
    references kept); a plain dict becomes one."""
    out = (copy.deepcopy(config) if isinstance(config, config_dict.ConfigDict)
           else config_dict.ConfigDict(config))

    def fill(given: config_dict.ConfigDict, full: config_dict.ConfigDict) -> None:
        for key in full.keys():
            if key not in given:
                given[key] = copy.deepcopy(full[key])
            elif isinstance(full[key], config_dict.ConfigDict) and \
                    isinstance(given[key], config_dict.ConfigDict):
                fill(given[key], full[key])

    with out.unlocked():
        fill(out, get_config())
    return out


def cell(*, model: str, feature: str,
         config: Optional[config_dict.ConfigDict] = None) -> config_dict.ConfigDict:
    """One model x feature cell of the study's tables 1-3: `config` (a copy; default the
    base config) with that model and feature, as the grid runs each cell.
    `model.pretrained` stays as given: ImageNet weights for the models whose spec has
    them, as the study fine-tuned those. `model.input_size` resizes feature images, so a
    waveform cell, which has none, leaves it unset."""
    out = get_config() if config is None else copy.deepcopy(config)
    with out.unlocked():
        out.model.name = model
        out.features.kind = feature
        if feature == "waveform":
            out.model.input_size = None
    return out


def recipe(*, model: str, feature: str = "mel") -> config_dict.ConfigDict:
    """jaxgenre's recipe for your own classifier on one cell: the study's model and
    feature, trained with the switches that did not hurt on real music nor on the hard
    synthetic set (BUILD_NOTES.md, "The recipe on real music"). Same epochs, batch size,
    learning rate and steps per epoch as the study's recipe."""
    config = cell(model=model, feature=feature)
    # SpecAugment at half the default widths: the full widths and random crops lost on
    # real music (issue 22); mixup lowered the hard set's mean (BUILD_NOTES, "The
    # ablation"). `--config.augment.mixup_alpha=1.0` etc. turn them on.
    config.augment.update(spec_augment=True, freq_mask_fraction=0.0625,
                          time_mask_fraction=0.03125)
    config.optim.update(name="adamw", weight_decay=0.05, schedule="warmup_cosine")
    config.train.label_smoothing = 0.1
    # A validation set of a few dozen clips saturates: among the epochs at the top
    # accuracy, keep the one with the lowest validation log-loss.
    config.train.select = "accuracy_loss"
    # Test windows stay the study's tiles: overlapping windows helped on one real-music
    # variant and hurt on the other (BUILD_NOTES).
    return config


def music_cell(*, probe: bool, config: Optional[config_dict.ConfigDict] = None
               ) -> config_dict.ConfigDict:
    """musicnn pretrained on the Million Song Dataset, moved to this task: `config` (a
    copy; default the base config) with musicnn, its weights and its own front end and
    3 s windows, as a probe (the backbone frozen, a new head trained) or a fine-tune
    (every layer trained, the backbone at a tenth of the head's learning rate). The
    rest — optimiser, epochs, augmentation — stays as `config` has it: the study's grid
    runs these cells beside the nine with the grid's recipe."""
    out = cell(model="musicnn", feature="musicnn", config=config)
    with out.unlocked():
        # musicnn's front end: 16 kHz, hop 256, 96 mel bands; 187 frames (2.992 s) per
        # window, as its weights were trained and its extractor cuts.
        out.features.update(sr=16000, hop_length=256)
        out.data.segment_seconds = 187 * 256 / 16000
        out.model.update(pretrained=True, weights="MSD", freeze_backbone=probe)
        out.model.input_size = None
        out.model.normalisation = None
        out.optim.backbone_lr_scale = 1.0 if probe else 0.1
        if probe:  # the frozen features do not change; masking them would only add noise
            out.augment.spec_augment = False
    return out


def musicnn_transfer(*, probe: bool) -> config_dict.ConfigDict:
    """configs/musicnn_probe.py and musicnn_finetune.py: `music_cell` on the recipe (its
    optimiser, schedule, label smoothing, epoch selection and, for the fine-tune,
    augmentation), the study's batch size and epochs."""
    return music_cell(probe=probe, config=recipe(model="musicnn", feature="musicnn"))


def audioset_cell(*, probe: bool, config: Optional[config_dict.ConfigDict] = None
                  ) -> config_dict.ConfigDict:
    """PANNs' CNN14 pretrained on AudioSet, moved to this task as `music_cell` moves
    musicnn: its weights (Zenodo's file, fetched into torch's hub folder, or
    model.checkpoint), its own front end, 10 s windows (the length it was trained on), as
    a probe or a fine-tune (the backbone at a tenth of the head's learning rate)."""
    out = cell(model="panns_cnn14", feature="panns", config=config)
    with out.unlocked():
        out.features.update(sr=32000, hop_length=320)
        out.data.segment_seconds = 10.0
        out.model.update(pretrained=True, freeze_backbone=probe)
        out.model.input_size = None
        out.model.normalisation = None
        out.optim.backbone_lr_scale = 1.0 if probe else 0.1
        if probe:
            out.augment.spec_augment = False
    return out


def panns_transfer(*, probe: bool) -> config_dict.ConfigDict:
    """configs/panns_probe.py and panns_finetune.py: `audioset_cell` on the recipe, as
    `musicnn_transfer` is for musicnn."""
    return audioset_cell(probe=probe, config=recipe(model="panns_cnn14", feature="panns"))


def flat(tree: dict, prefix: str = "") -> dict:
    """A nested config dict as {'section.key': value}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
