import numpy as np
import pytest
import torch
from torch import nn

from atomcollapse.models.painn import PaiNN
from atomcollapse.training.strategies import (
    layer_multipliers,
    make_strategy,
    steps_for_primary_batches,
    strategy_class,
)
from atomcollapse.training.strategies.finetune_llrd import JMP_LAYER_MULTIPLIERS
from atomcollapse.training.streams import BatchStream, shard


class _Model(nn.Module):
    def __init__(self, layers=3):
        super().__init__()
        self.backbone = PaiNN(hidden=8, layers=layers, n_rbf=4, cutoff=3.0, max_z=10)
        self.heads = nn.ModuleDict({"property": nn.Linear(8, 1), "energy": nn.Linear(8, 1)})


def _strategy(name, task_seed=0, **kw):
    return make_strategy(name, strategy_class(name).Settings(**kw), task_seed)


def _groups(name, model, lr=1e-3, **kw):
    s = _strategy(name, **kw)
    s.prepare(model)
    return s, {g["name"]: g for g in s.param_groups(model, lr)}


def test_llrd_interpolates_jmp_multipliers():
    assert layer_multipliers(6, JMP_LAYER_MULTIPLIERS) == list(JMP_LAYER_MULTIPLIERS)
    three = layer_multipliers(3, JMP_LAYER_MULTIPLIERS)
    assert three[0] == 0.55 and three[2] == 0.625
    assert three[1] == pytest.approx(0.35)
    assert layer_multipliers(2, (0.5, 0.7)) == [0.5, 0.7]


def test_llrd_groups_have_the_right_learning_rates():
    model = _Model(layers=3)
    _, g = _groups("finetune-llrd", model)
    assert g["embedding"]["base_lr"] == pytest.approx(0.3e-3)
    assert g["layer1"]["base_lr"] == pytest.approx(0.55e-3)
    assert g["layer2"]["base_lr"] == pytest.approx(0.35e-3)
    assert g["layer3"]["base_lr"] == pytest.approx(0.625e-3)
    assert g["head:property"]["base_lr"] == pytest.approx(1e-3)
    assert "head:energy" not in g
    grouped = {id(p) for x in g.values() for p in x["params"]}
    assert all(id(p) in grouped for p in model.backbone.parameters())
    _, custom = _groups("finetune-llrd", model, embedding=0.1, layers=(0.2, 0.4, 0.6), heads=2.0)
    assert [
        custom[k]["base_lr"] for k in ("embedding", "layer1", "layer2", "layer3")
    ] == pytest.approx([1e-4, 2e-4, 4e-4, 6e-4])
    assert custom["head:property"]["base_lr"] == pytest.approx(2e-3)


def test_linear_probe_trains_only_the_head():
    model = _Model()
    _, g = _groups("linear-probe", model)
    assert list(g) == ["head:property"]
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_finetune_and_mft_groups():
    model = _Model()
    _, g = _groups("finetune", model)
    assert set(g) == {"backbone", "head:property"}
    assert all(x["base_lr"] == 1e-3 for x in g.values())
    _, g = _groups("mft", model)
    assert set(g) == {"backbone", "head:property", "head:energy"}


def test_lpft_freezes_backbone_in_first_phase_only():
    model = _Model()
    s = _strategy("lp-ft", lp_fraction=0.25)
    frozen = []
    for step in range(100):
        s.before_step(model, step, 100)
        frozen.append(not any(p.requires_grad for p in model.backbone.parameters()))
    assert frozen == [True] * 25 + [False] * 75


def test_l2sp_penalty_zero_at_start_and_grows():
    model = _Model()
    s = _strategy("l2-sp", alpha=0.5)
    s.prepare(model)
    assert float(s.penalty(model).detach()) == 0.0
    with torch.no_grad():
        p = next(model.backbone.parameters())
        p.add_(0.1)
    expected = 0.5 * 0.01 * p.numel()
    assert float(s.penalty(model).detach()) == pytest.approx(expected, rel=1e-4)
    with torch.no_grad():
        p.add_(0.1)
    assert float(s.penalty(model).detach()) == pytest.approx(4 * expected, rel=1e-4)


def test_mft_draws_tasks_about_half_half_reproducibly():
    s = _strategy("mft", task_seed=123)
    draws = [s.tasks(k)[0][0] for k in range(4000)]
    share = draws.count("property") / len(draws)
    assert 0.47 < share < 0.53
    again = _strategy("mft", task_seed=123)
    assert draws[1000:1100] == [again.tasks(k)[0][0] for k in range(1000, 1100)]
    other = _strategy("mft", task_seed=124)
    assert draws[:100] != [other.tasks(k)[0][0] for k in range(100)]
    summed = _strategy("mft", mixing="sum", aux_weight=0.3)
    assert summed.tasks(5) == [("property", 1.0), ("ff", 0.3)]
    weighted = _strategy("mft", task_seed=123, aux_weight=0.25)
    assert {w for k in range(50) for t, w in weighted.tasks(k) if t == "ff"} == {0.25}
    assert [t for k in range(50) for t, _ in weighted.tasks(k)] == draws[:50]


def test_steps_for_primary_batches():
    mft = _strategy("mft", task_seed=1)
    n = steps_for_primary_batches(mft, 200)
    assert 300 < n < 500
    assert sum(mft.tasks(k)[0][0] == "property" for k in range(n)) == 200
    assert mft.tasks(n - 1)[0][0] == "property"
    assert steps_for_primary_batches(_strategy("finetune"), 200) == 200


def test_stream_order_is_seeded_covers_epochs_and_resumes():
    rows = np.arange(10, 33)
    a = BatchStream(rows, 5, seed=7)
    batches = [a.next() for _ in range(10)]
    first_epoch = np.concatenate([b for b, _ in batches[:5]])
    assert sorted(first_epoch) == list(rows)
    assert [e for _, e in batches] == [False] * 4 + [True] + [False] * 4 + [True]
    assert len(batches[4][0]) == 3
    assert not np.array_equal(batches[0][0], batches[5][0])
    b = BatchStream(rows, 5, seed=7)
    for _ in range(7):
        b.next()
    state = b.state_dict()
    c = BatchStream(rows, 5, seed=7)
    c.load_state_dict(state)
    for k in range(7, 10):
        assert np.array_equal(c.next()[0], batches[k][0])
    assert c.order_hash == a.order_hash
    assert BatchStream(rows, 5, seed=8).next()[0].tolist() != batches[0][0].tolist()


def test_shards_partition_a_batch():
    rows = np.arange(11)
    parts = [shard(rows, r, 3) for r in range(3)]
    assert sorted(np.concatenate(parts)) == list(rows)


def test_atom_sized_batches_reach_n_atoms_like_deepmd_auto():
    n_atoms = np.array([18] * 40 + [9] * 40)
    rows = np.arange(80)
    s = BatchStream(rows, "auto:64", seed=3, n_atoms=n_atoms)
    seen, sizes = [], []
    while True:
        batch, ended = s.next()
        seen.extend(batch.tolist())
        atoms = n_atoms[batch]
        # the smallest prefix with at least 64 atoms: dropping the last structure falls short
        assert atoms.sum() >= 64 or ended
        assert atoms[:-1].sum() < 64
        sizes.append(len(batch))
        if ended:
            break
    assert sorted(seen) == list(range(80))
    assert set(sizes[:-1]) <= {4, 5, 6, 7, 8}
    assert s.batches_in_epochs(1) == len(sizes)
    uniform = BatchStream(np.arange(10), "auto:512", seed=0, n_atoms=np.full(10, 18))
    assert len(uniform.next()[0]) == 10  # ceil(512 / 18) = 29 > 10 structures
    big = BatchStream(np.arange(100), "auto:512", seed=0, n_atoms=np.full(100, 18))
    assert len(big.next()[0]) == 29


def test_atom_sized_stream_resumes_and_is_the_same_for_every_strategy():
    n_atoms = np.random.default_rng(0).integers(3, 30, size=200)
    rows = np.arange(0, 200, 2)
    a = BatchStream(rows, "auto:100", seed=5, n_atoms=n_atoms)
    batches = [a.next()[0] for _ in range(30)]
    b = BatchStream(rows, "auto:100", seed=5, n_atoms=n_atoms)
    for _ in range(12):
        b.next()
    c = BatchStream(rows, "auto:100", seed=5, n_atoms=n_atoms)
    c.load_state_dict(b.state_dict())
    for k in range(12, 30):
        assert np.array_equal(c.next()[0], batches[k])
    assert c.order_hash == a.order_hash


@pytest.mark.parametrize("bad", ["auto:0", "auto:abc", "0", "-3", "auto:", "x"])
def test_bad_batch_sizes_are_refused(bad):
    from atomcollapse.training.streams import parse_batch_size

    with pytest.raises(ValueError, match="not a batch size"):
        parse_batch_size(bad)


def test_registry_lists_every_strategy_in_the_study_order_with_its_needs():
    from atomcollapse.training.strategies import strategy_names

    names = strategy_names()
    assert names == ("scratch", "finetune", "finetune-llrd", "linear-probe", "mft", "lp-ft",
                     "l2-sp")  # fmt: skip
    assert [n for n in names if not strategy_class(n).needs_pretrained] == ["scratch"]
    assert [n for n in names if strategy_class(n).needs_ff] == ["mft"]
    assert [n for n in names if strategy_class(n).fresh_backbone] == ["scratch"]
    for n in names:
        assert strategy_class(n).summary
