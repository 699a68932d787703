"""Each augmentation against what it must do to a known input: gains against librosa on
louder audio, masks as whole bands of bounded width, mixup as a convex combination, label
smoothing by hand, random crops inside their clips, and the optimiser's decay mask and
warm-up by hand."""


import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
from scipy import stats

from configs import base
from jaxgenre.training import augment, steps
from jaxgenre.data import pipeline
from jaxgenre.features import FeatureSpec
from jaxgenre.models import adapter
from test_features import DB_TOL, MFCC_TOL

SR = 22050


def _music(seconds=1.0, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
            ).astype(np.float32)


@pytest.mark.parametrize("kind", ["mel", "mfcc"])
def test_a_gain_equals_the_feature_of_louder_audio_by_librosa(kind):
    key = jax.random.PRNGKey(3)
    clips = np.stack([_music(seed=s) for s in range(3)])
    # The same key scales the waveforms: their factors are the gains in dB.
    louder = np.asarray(augment.random_gain(key, jnp.asarray(clips), max_db=6.0,
                                            feature=FeatureSpec.from_config({"kind": "waveform"})))
    gains_db = 20 * np.log10(louder[:, 0] / clips[:, 0])
    assert np.all(np.abs(gains_db) <= 6.0) and np.ptp(gains_db) > 0.5
    spec = FeatureSpec.from_config(dict(kind=kind, sr=SR, n_fft=1024, hop_length=256, n_mels=40))
    ours = np.stack([np.asarray(spec.compute(c)) for c in clips])
    shifted = np.asarray(augment.random_gain(key, jnp.asarray(ours), max_db=6.0, feature=spec))
    for clip, gain, got in zip(clips, gains_db, shifted):
        y = clip * 10 ** (gain / 20)
        if kind == "mel":
            ref = librosa.power_to_db(librosa.feature.melspectrogram(
                y=y, sr=SR, n_fft=1024, hop_length=256, n_mels=40), top_db=80.0)
        else:
            ref = librosa.feature.mfcc(y=y, sr=SR, n_fft=1024, hop_length=256, n_mels=40,
                                       n_mfcc=20)
        # The suite's bar for our features against librosa (test_features.py). It was
        # 2e-3 of the largest |value| (0.05 dB, 0.24 for MFCC), with no need: measured
        # max |Δ| 1.0e-5 dB and 3.1e-5 (float32 features; a dB shift is exact, the
        # top_db floor moves with the peak), so a shift off by 0.01 dB fails here.
        worst = float(np.max(np.abs(got - ref)))
        assert worst <= (MFCC_TOL if kind == "mfcc" else DB_TOL), (kind, worst)


def test_per_example_standardisation_undoes_a_gain():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 16, 20)) * 10 - 40
    gained = augment.random_gain(jax.random.PRNGKey(1), x, max_db=6.0,
                                 feature=FeatureSpec.from_config({"kind": "mel"}))
    assert float(jnp.max(jnp.abs(gained - x))) > 0.5
    np.testing.assert_allclose(adapter.adapt(gained), adapter.adapt(x), atol=1e-4)


def _zero_bands(mask_1d):
    """Lengths of the runs of True in a boolean vector."""
    runs, length = [], 0
    for value in list(mask_1d) + [False]:
        if value:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


def test_spec_augment_masks_whole_bands_of_bounded_width_where_the_key_says():
    images = jnp.ones((64, 64, 100, 1))
    out = np.asarray(augment.spec_augment(jax.random.PRNGKey(7), images, freq_masks=2,
                                          time_masks=2, freq_mask_fraction=0.125,
                                          time_mask_fraction=0.1))[..., 0]
    assert set(np.unique(out)) <= {0.0, 1.0}
    widest_f, widest_t = [], []
    for example in out:
        zero_rows = np.all(example == 0, axis=1)
        zero_cols = np.all(example == 0, axis=0)
        # Every zero cell lies in a fully masked row (frequency) or column (time).
        expected = zero_rows[:, None] | zero_cols[None, :]
        np.testing.assert_array_equal(example == 0, expected)
        bands_f, bands_t = _zero_bands(zero_rows), _zero_bands(zero_cols)
        assert len(bands_f) <= 2 and sum(bands_f) <= 2 * 8
        assert len(bands_t) <= 2 and sum(bands_t) <= 2 * 10
        widest_f += bands_f
        widest_t += bands_t
    assert max(widest_f) >= 7 and max(widest_t) >= 9  # widths reach the limits...
    assert min(widest_f + widest_t) >= 1
    # ...bands land all over the axes, and the same key gives the same masks.
    first_rows = [np.argmax(np.all(e == 0, axis=1)) for e in out if np.any(np.all(e == 0, 1))]
    assert min(first_rows) < 10 and max(first_rows) > 50
    again = augment.spec_augment(jax.random.PRNGKey(7), images, freq_masks=2, time_masks=2,
                                 freq_mask_fraction=0.125, time_mask_fraction=0.1)
    np.testing.assert_array_equal(np.asarray(again)[..., 0], out)
    other = augment.spec_augment(jax.random.PRNGKey(8), images, freq_masks=2, time_masks=2,
                                 freq_mask_fraction=0.125, time_mask_fraction=0.1)
    assert not np.array_equal(np.asarray(other)[..., 0], out)


def test_mixup_is_one_convex_combination_of_inputs_and_of_targets():
    n, classes = 512, 4
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 3, 5, 1))
    labels = jnp.arange(n) % classes  # neighbours always differ
    targets = jax.nn.one_hot(labels, classes)
    mixed_x, mixed_t = augment.mixup(jax.random.PRNGKey(1), x, targets, alpha=1.0)
    lam = np.asarray(mixed_t)[np.arange(n), np.asarray(labels)]  # the own class's weight
    partner = np.roll(np.asarray(labels), 1)
    np.testing.assert_allclose(np.asarray(mixed_t)[np.arange(n), partner], 1 - lam, atol=1e-6)
    np.testing.assert_allclose(np.asarray(mixed_t).sum(1), 1.0, atol=1e-6)
    expected = lam[:, None, None, None] * np.asarray(x) + (1 - lam[:, None, None, None]) * \
        np.roll(np.asarray(x), 1, axis=0)
    np.testing.assert_allclose(np.asarray(mixed_x), expected, atol=1e-5)
    # alpha = 1: lambda ~ Beta(1, 1), the uniform distribution.
    assert stats.kstest(lam, "uniform").pvalue > 1e-3


def test_label_smoothing_and_the_order_of_a_full_batch_by_hand():
    aug = augment.Augmentation(label_smoothing=0.1)
    x = jnp.zeros((3, 4, 6))
    inputs, targets = augment.augment_batch(aug, jax.random.PRNGKey(0), x, jnp.array([0, 2, 1]),
                                            num_classes=5, adapt=adapter.adapt)
    expected = np.full((3, 5), 0.02)
    expected[[0, 1, 2], [0, 2, 1]] = 0.92
    np.testing.assert_allclose(np.asarray(targets), expected, atol=1e-7)
    assert inputs.shape == (3, 4, 6, 1)
    # Nothing on: the labels pass through and the inputs are adapt's.
    inputs, labels = augment.augment_batch(augment.Augmentation(), jax.random.PRNGKey(0), x,
                                           jnp.array([0, 2, 1]), num_classes=5,
                                           adapt=adapter.adapt)
    np.testing.assert_array_equal(np.asarray(labels), [0, 2, 1])
    np.testing.assert_array_equal(np.asarray(inputs), np.asarray(adapter.adapt(x)))


def test_the_config_switches_map_to_the_augmentation():
    config = base.get_config()
    mel = FeatureSpec.from_config(config.features)
    assert augment.from_config(config, mel) == augment.Augmentation(feature=mel)  # all off
    config.augment.update(spec_augment=True, mixup_alpha=0.4, gain_db=3.0)
    config.train.label_smoothing = 0.05
    aug = augment.from_config(config, mel)
    assert (aug.freq_masks, aug.time_masks, aug.mixup_alpha, aug.gain_db,
            aug.label_smoothing) == (2, 2, 0.4, 3.0, 0.05)


def test_random_crops_start_anywhere_in_their_clips_and_depend_on_seed_and_epoch():
    tiles = pipeline.segments(np.array([4, 9, 2]), 1000, segment_frames=100)
    assert len(tiles) == 30
    crops = pipeline.random_crops(tiles, 1000, seed=0, epoch=0)
    assert len(crops) == 30 and crops.length == 100
    np.testing.assert_array_equal(np.bincount(crops.clip, minlength=10)[[2, 4, 9]], [10, 10, 10])
    assert crops.start.min() >= 0 and crops.start.max() <= 900
    assert np.mean(crops.start % 100 != 0) > 0.5  # not only the tiles' positions
    same = pipeline.random_crops(tiles, 1000, seed=0, epoch=0)
    np.testing.assert_array_equal(same.start, crops.start)
    assert not np.array_equal(pipeline.random_crops(tiles, 1000, seed=0, epoch=1).start,
                              crops.start)
    assert len(pipeline.random_crops(tiles, 1000, seed=0, epoch=0, per_clip=3)) == 9
    many = pipeline.random_crops(tiles, 1000, seed=1, epoch=0, per_clip=2000).start
    assert many.min() == 0 and many.max() == 900  # both ends reachable


def test_weight_decay_skips_biases_and_batchnorm_by_hand():
    params = {"conv": {"kernel": jnp.full((3, 3, 1, 2), 2.0), "bias": jnp.full((2,), 2.0)},
              "bn": {"scale": jnp.full((2,), 2.0), "bias": jnp.full((2,), 2.0)}}
    optim = base.with_defaults({"optim": dict(name="adamw", learning_rate=0.1, weight_decay=0.5,
                                              schedule="constant")}).optim
    tx = steps.create_optimizer(optim, 10)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    new = jax.tree.map(lambda p, u: p + u, params, updates)
    np.testing.assert_allclose(new["conv"]["kernel"], 2.0 - 0.1 * 0.5 * 2.0)  # decayed
    for leaf in (new["conv"]["bias"], new["bn"]["scale"], new["bn"]["bias"]):
        np.testing.assert_array_equal(leaf, 2.0)  # left alone


def test_warmup_then_cosine_schedule_by_hand():
    optim = base.with_defaults({"optim": dict(name="adam", learning_rate=1.0, weight_decay=0.0,
                                              schedule="warmup_cosine",
                                              warmup_fraction=0.1)}).optim
    tx = steps.create_optimizer(optim, 100)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    rates = []
    for _ in range(100):  # Adam's first steps move by ~lr: read the rate off the update
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        rates.append(-float(updates["w"]))
    np.testing.assert_allclose(rates[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(rates[5], 0.5, rtol=1e-3)  # halfway up a 10-step warm-up
    np.testing.assert_allclose(rates[10], 1.0, rtol=1e-3)
    np.testing.assert_allclose(rates[55], 0.5 * (1 + np.cos(np.pi * 45 / 90)), rtol=1e-3)
    assert rates[-1] < 1e-3
