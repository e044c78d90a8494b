import itertools
import math

import pytest

from atomcollapse.errors import InputError
from atomcollapse.training.config import OptimConfig, TrainConfig, load_config
from atomcollapse.training.schedule import effective_decay_steps, lr_factor, ramp_weight


def test_defaults_follow_the_study():
    cfg = load_config()
    assert isinstance(cfg, TrainConfig)
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.lr_end) == ("adam", 1e-3, 1e-5)
    assert cfg.optim.grad_clip == 5.0
    assert (cfg.ff_loss.energy_weight, cfg.ff_loss.energy_weight_end) == (0.2, 20.0)
    assert (cfg.ff_loss.force_weight, cfg.ff_loss.force_weight_end) == (100.0, 60.0)
    assert cfg.strategy.name == "finetune"
    assert (cfg.batch_size, cfg.loss_convention) == ("auto:512", "deepmd")
    mft = load_config(None, {"strategy.name": "mft"}).strategy.settings
    assert (mft.mixing, mft.property_prob, mft.aux_weight) == ("sample", 0.5, 1.0)
    assert mft.ff_batch_size == "auto:128"


def test_toml_then_overrides_take_precedence(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        "batch_size = 7\nepochs = 3\n[optim]\nlr = 0.01\nbetas = [0.9, 0.95]\n"
        '[strategy]\nname = "finetune-llrd"\nlayers = [1, 2]\n'
    )
    cfg = load_config(f, {"epochs": 5, "optim.optimizer": "adamw", "seed": None})
    assert cfg.batch_size == 7 and cfg.epochs == 5 and cfg.seed == 0
    assert cfg.optim.lr == 0.01 and cfg.optim.optimizer == "adamw"
    assert cfg.optim.betas == (0.9, 0.95)
    assert cfg.strategy.settings.layers == (1.0, 2.0) and cfg.strategy.name == "finetune-llrd"
    assert load_config(None, cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batchsize = 3", "unknown setting 'batchsize'"),
        ("[optim]\nlearning_rate = 1", "unknown setting 'optim.learning_rate'"),
        ('batch_size = "big"', "'batch_size'"),
        ('[optim]\noptimizer = "sgd"', "'optim.optimizer'"),
        ("[optim]\nlr_end = 1.0", "lr_end"),
        ('[strategy]\nname = "magic"', "strategy.name"),
        ('[strategy]\nname = "lp-ft"\nlp_fraction = 1.5', "'strategy.lp_fraction' must be"),
        ("[strategy]\nlp_fraction = 0.5", "does not apply to strategy 'finetune'"),
        ("[strategy]\naux_weight = 0.5", "'strategy.aux_weight' does not apply"),
        ('[strategy]\nname = "mft"\naux_weight = -1.0', "'strategy.aux_weight' must not"),
        ('[strategy]\nname = "mft"\nff_batch_size = "auto:x"', "'strategy.ff_batch_size'"),
        ('loss_convention = "sum"', "'loss_convention'"),
        ('batch_size = "auto:0"', "'batch_size' 'auto:0' is not a batch size"),
        ('batch_size = "auto:abc"', "'batch_size' 'auto:abc' is not a batch size"),
        ('eval_batch_size = "auto:-5"', "'eval_batch_size'"),
        ("max_forgetting = -1", "'max_forgetting' must not be negative"),
        ("batch_size = [", "invalid TOML"),
    ],
)
def test_bad_settings_are_one_clear_error(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=message) as e:
        load_config(f)
    assert "bad.toml" in e.value.line()


def test_exponential_schedule_reaches_lr_end_in_stairs():
    cfg = OptimConfig(lr=1e-3, lr_end=1e-5, decay_steps=100)
    total = 1000
    f = [lr_factor(s, total, cfg) for s in range(total + 1)]
    assert f[0] == 1.0 and f[99] == 1.0 and f[100] < 1.0
    assert math.isclose(f[total], 1e-2, rel_tol=1e-9)
    assert all(a >= b for a, b in itertools.pairwise(f))
    assert len(set(f)) == 11  # ten decays of equal ratio
    assert math.isclose(f[200] / f[100], f[100], rel_tol=1e-9)


def test_decay_steps_longer_than_the_run_are_shortened_like_deepmd():
    assert effective_decay_steps(1000, 100_000) == 1000
    assert effective_decay_steps(1000, 500) == 6
    assert effective_decay_steps(5000, 2000) == 100
    cfg = OptimConfig(decay_steps=1000)
    assert lr_factor(499, 500, cfg) < 0.02


def test_cosine_with_warmup():
    cfg = OptimConfig(schedule="cosine", lr=1e-3, lr_end=1e-4, warmup_steps=10)
    assert math.isclose(lr_factor(0, 110, cfg), 0.1)
    assert math.isclose(lr_factor(5, 110, cfg), 0.55)
    assert lr_factor(10, 110, cfg) == 1.0
    assert math.isclose(lr_factor(60, 110, cfg), 0.55)
    assert math.isclose(lr_factor(110, 110, cfg), 0.1)


def test_loss_weight_ramp_follows_the_learning_rate():
    assert ramp_weight(0.2, 20.0, 1.0, True) == 0.2
    assert math.isclose(ramp_weight(0.2, 20.0, 0.0, True), 20.0)
    assert math.isclose(ramp_weight(100.0, 60.0, 0.5, True), 80.0)
    assert ramp_weight(100.0, 60.0, 0.5, False) == 100.0
