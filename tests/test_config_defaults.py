"""`configs/base.with_defaults`: the one way a config that lacks keys (an old run.json,
a config file not derived from configs/base.py) gets them. The reference is
`base.get_config()` itself: a filled config behaves as the full one does."""

import pytest
from ml_collections import config_dict

from configs import base


def test_missing_keys_get_the_base_defaults_and_given_ones_stay():
    filled = base.with_defaults({"model": {"name": "resnet18"}, "optim": {"learning_rate": 0.5}})
    full = base.get_config()
    assert filled.model.name == "resnet18" and filled.optim.learning_rate == 0.5
    for section in ("data", "features", "train", "augment", "eval"):
        assert filled[section].to_dict() == full[section].to_dict()
    assert filled.optim.ema_decay == full.optim.ema_decay
    assert base.with_defaults(full).to_dict() == full.to_dict()  # a full config: unchanged


def test_a_config_dict_keeps_its_lock_types_and_references():
    config = base.get_config()
    with config.unlocked():
        del config.optim["ema_decay"]
    config.lock()
    filled = base.with_defaults(config)
    assert filled.optim.ema_decay == 0.0 and filled.is_locked
    with pytest.raises(AttributeError):
        filled.featurs = 1  # a typo is still refused, as on the locked original
    filled.features.ref = "max"  # the field accepts what base's accepts...
    with pytest.raises(TypeError):
        filled.data.home = 5  # ...and refuses what base's refuses
    with pytest.raises(TypeError):
        base.get_config().data.home = 5
    assert "ema_decay" not in config.optim  # the caller's config is not changed


def test_a_plain_dict_becomes_a_config_dict():
    assert isinstance(base.with_defaults({}), config_dict.ConfigDict)
    assert base.with_defaults({}).to_dict() == base.get_config().to_dict()
