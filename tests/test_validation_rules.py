"""Validation covers every value of the config: each key of configs/base.py has a rule,
and each rule is applied before any work — a wrong value of every key, of every kind of
wrongness written out here (not taken from the rules), is refused in one line naming
the key."""

from __future__ import annotations

import glob
import importlib.util
import math
import os

import ml_collections
import pytest

from configs import base
from jaxgenre import validation
from jaxgenre.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _valid() -> dict:
    config = base.get_config()
    config.data.source = "synthetic"
    return config.to_dict()


def _with(key: str, value) -> ml_collections.ConfigDict:
    tree = _valid()
    node = tree
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return ml_collections.ConfigDict(tree)


def _wrong_values(rule: validation.Rule):
    """Values the rule must refuse, by what it says a value may be."""
    out = [] if rule.optional else [None]
    if rule.kind == "whole":
        out += [int(rule.low) - 1, rule.low + 0.5, True, str(int(rule.low) + 1)]
    elif rule.kind == "number":
        out += [rule.low if rule.open_low else rule.low - 1, math.nan, "1", True]
        if math.isfinite(rule.high):
            out.append(rule.high if not rule.closed_high else rule.high + 0.5)
        else:
            out.append(math.inf)
    elif rule.kind == "flag":
        out += [1, "yes"]
    elif rule.kind == "choice":
        out += ["no-such-value", 3]
    elif rule.kind == "text":
        out += [7, ""]
    elif rule.kind == "hex":
        out += ["z" * rule.length, "a" * (rule.length - 1), 7]
    elif rule.kind == "urls":
        out += [(), ("",), (7,), "https://example.org/x"]
    elif rule.kind == "fractions":
        out += [(0.5, 0.5), (0.8, 0.1, 0.2), (-0.1, 0.6, 0.5), "0.8,0.1,0.1"]
    elif rule.kind == "ref":
        out += [0, -1.0, "min"]
    elif rule.kind == "size":
        out += [(224,), (0, 224), 224, (224.0, 224)]
    else:
        raise AssertionError(f"no wrong values written for rule kind {rule.kind!r}")
    return out


def _config_files():
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
        spec = importlib.util.spec_from_file_location("cfg_" + os.path.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "get_config"):
            yield os.path.basename(path), module.get_config()


def test_every_key_of_the_base_config_has_a_rule_and_every_rule_a_key():
    keys = set(base.flat(base.get_config().to_dict()))
    assert keys == set(validation.rules()), (keys ^ set(validation.rules()))


def test_the_config_files_add_no_key_without_a_rule_and_pass_validation():
    for name, config in _config_files():
        extra = set(base.flat(config.to_dict())) - set(validation.rules())
        assert not extra, (name, extra)
        config = base.with_defaults(config)
        if config.data.source == "folder":
            config.data.root = "/some/folder"
        validation.check_config(config)


CASES = [(key, value) for key, rule in validation.rules().items()
         for value in _wrong_values(rule)]


@pytest.mark.parametrize("key,value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_a_wrong_value_of_every_key_is_refused_naming_the_key(key, value):
    with pytest.raises(UserError, match=f"config\\.{key.replace('.', '[.]')}"):
        validation.check_config(_with(key, value))


@pytest.mark.parametrize("key,value", [
    ("train.epochs", None), ("seeds", 3), ("data.fold", 9), ("data.split", None),
    ("model.input_size", (224, 224)), ("features.ref", "max"), ("features.fmax", 8000.0),
    ("eval.window_overlap", 0.0), ("augment.freq_mask_fraction", 1.0),
    ("data.fractions", (0.7, 0.15, 0.15)), ("model.checkpoint", "/srv/weights.pth"),
    ("train.prefetch", 0), ("model.normalisation", "imagenet"),
    # download.fetch's other address forms (README: a mirror of your own)
    ("data.gtzan.urls", ("file:///srv/genres.tar.gz",)), ("data.fma.mirrors", ("/srv/fma",)),
])
def test_values_at_the_edges_of_their_rules_are_accepted(key, value):
    validation.check_config(_with(key, value))


def test_a_checkpoint_digest_goes_with_its_checkpoint():
    config = _with("model.checkpoint", "/srv/weights.pth")
    config.model.checkpoint_sha256 = "AB" * 32
    validation.check_config(config)
    with pytest.raises(UserError, match="config.model.checkpoint_sha256 checks config"):
        validation.check_config(_with("model.checkpoint_sha256", "ab" * 32))


@pytest.mark.parametrize("key,value", [
    ("optim.learning_rate", 0.0), ("features.n_mels", 0), ("model.num_classes", 1),
    ("optim.ema_decay", 1.0), ("train.label_smoothing", 1.0), ("data.folds", 1),
    ("train.batch_size", 0), ("eval.window_overlap", 1.0), ("augment.gain_db", -1.0),
    ("data.clip_seconds", 0.0), ("features.fmax", 0.0), ("optim.backbone_lr_scale", -0.1),
    ("seed", -1), ("features.sr", 0), ("data.synthetic.clips_per_class", 0),
])
def test_values_known_not_to_work_are_refused(key, value):
    """Written out by hand, not derived from the rules: a bound moved the wrong way in
    `rules()` fails here."""
    with pytest.raises(UserError, match=f"config\\.{key.replace('.', '[.]')}"):
        validation.check_config(_with(key, value))


def test_values_that_must_agree_are_checked_together():
    with pytest.raises(UserError, match="config.data.fold must be below data.folds"):
        validation.check_config(_with("data.fold", 10))
    tree = _valid()
    tree["features"]["kind"], tree["model"]["name"] = "waveform", "sample_cnn"
    tree["augment"]["spec_augment"] = True
    with pytest.raises(UserError, match="spec_augment masks frequency bands"):
        validation.check_config(ml_collections.ConfigDict(tree))
    with pytest.raises(UserError, match="needs --config.data.root"):
        validation.check_config(_with("data.source", "folder"))
    # vectorised seeds need seeds to vectorise; with them the same key passes
    with pytest.raises(UserError, match="vectorize_seeds trains the runs of config.seeds"):
        validation.check_config(_with("train.vectorize_seeds", True))
    tree = _valid()
    tree["seeds"], tree["train"]["vectorize_seeds"] = 2, True
    validation.check_config(ml_collections.ConfigDict(tree))
