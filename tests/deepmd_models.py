"""Real DeePMD checkpoints for the DeePMD bridge's tests, made by DeePMD-kit's own trainer.

:func:`train_checkpoints` writes a tiny deepmd/npy dataset (rattled H/C/N/O clusters with a
Morse pair potential: energies in eV, forces in eV/A) and runs ``dp --pt train``'s own
``train`` for a few steps: a single-task DPA-3 and a two-branch multi-task DPA-3 (branches
``Alpha`` and ``Beta``, ``Beta`` aliased ``B``, one case embedding each). Seconds on a CPU.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

import numpy as np

from tests.training.synthetic import morse

TYPE_MAP = ["H", "C", "N", "O"]
_Z = [1, 6, 7, 8]
DESCRIPTOR = {
    "type": "dpa3",
    "repflow": {"n_dim": 16, "e_dim": 8, "a_dim": 4, "nlayers": 2, "e_rcut": 4.0,
                "e_rcut_smth": 3.5, "e_sel": 48, "a_rcut": 3.5, "a_rcut_smth": 3.0, "a_sel": 32,
                "axis_neuron": 4, "update_angle": True, "smooth_edge_update": True},
    "precision": "float64", "activation_function": "silut:3.0", "seed": 1,
}  # fmt: skip
FITTING = {"neuron": [16, 16], "resnet_dt": True, "precision": "float64", "seed": 1}
LOSS = {"type": "ener", "start_pref_e": 0.2, "limit_pref_e": 20, "start_pref_f": 100,
        "limit_pref_f": 60}  # fmt: skip
TRAINING = {"numb_steps": 3, "disp_freq": 3, "save_freq": 3, "seed": 1}


def write_system(path: Path, n_atoms: int, n_frames: int, seed: int) -> Path:
    """One deepmd/npy system: ``n_frames`` rattled copies of a random cluster (no cell)."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, len(TYPE_MAP), size=n_atoms)
    base = np.zeros((n_atoms, 3))
    for i in range(1, n_atoms):
        while True:
            p = base[rng.integers(0, i)] + rng.normal(size=3) * 0.9
            if np.linalg.norm(base[:i] - p, axis=1).min() > 0.9:
                base[i] = p
                break
    z = np.array([_Z[t] for t in types])
    coords, energies, forces = [], [], []
    for _ in range(n_frames):
        pos = base + rng.normal(scale=0.05, size=base.shape)
        e, f = morse(z, pos)
        coords.append(pos.ravel())
        energies.append(e)
        forces.append(f.ravel())
    (path / "set.000").mkdir(parents=True, exist_ok=True)
    np.savetxt(path / "type.raw", types, fmt="%d")
    (path / "type_map.raw").write_text("\n".join(TYPE_MAP) + "\n")
    (path / "nopbc").write_text("")
    np.save(path / "set.000" / "coord.npy", np.array(coords))
    np.save(path / "set.000" / "energy.npy", np.array(energies))
    np.save(path / "set.000" / "force.npy", np.array(forces))
    return path


def single_task_input(systems: list[str]) -> dict:
    return {
        "model": {"type_map": TYPE_MAP, "descriptor": copy.deepcopy(DESCRIPTOR),
                  "fitting_net": copy.deepcopy(FITTING)},
        "learning_rate": {"type": "exp", "decay_steps": 5, "start_lr": 1e-3, "stop_lr": 1e-4},
        "loss": copy.deepcopy(LOSS),
        "training": {"training_data": {"systems": systems, "batch_size": 2}, **TRAINING},
    }  # fmt: skip


def multi_task_input(alpha: list[str], beta: list[str]) -> dict:
    def branch(seed: int) -> dict:
        return {"type_map": "type_map_all", "descriptor": "dpa3_descriptor",
                "fitting_net": {**FITTING, "seed": seed, "dim_case_embd": 2}}  # fmt: skip

    beta_branch = {**branch(2), "model_branch_alias": ["B"]}
    return {
        "model": {"shared_dict": {"type_map_all": TYPE_MAP,
                                  "dpa3_descriptor": copy.deepcopy(DESCRIPTOR)},
                  "model_dict": {"Alpha": branch(1), "Beta": beta_branch}},
        "learning_rate": {"type": "exp", "decay_steps": 5, "start_lr": 1e-3, "stop_lr": 1e-4},
        "loss_dict": {"Alpha": copy.deepcopy(LOSS), "Beta": copy.deepcopy(LOSS)},
        "training": {"model_prob": {"Alpha": 0.5, "Beta": 0.5},
                     "data_dict": {"Alpha": {"training_data": {"systems": alpha, "batch_size": 2}},
                                   "Beta": {"training_data": {"systems": beta, "batch_size": 2}}},
                     **TRAINING},
    }  # fmt: skip


def _train(folder: Path, config: dict) -> Path:
    """DeePMD's own trainer (``dp --pt train``'s entry) in ``folder``; its ``model.ckpt.pt``."""
    from deepmd.pt.entrypoints.main import train
    from deepmd.pt.utils import env

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "input.json").write_text(json.dumps(config))
    jit = env.CUSTOM_OP_USE_JIT  # train() sets it for the process; DeepPot needs it back
    try:
        with contextlib.chdir(folder):
            train(input_file="input.json", init_model=None, restart=None, finetune=None,
                  init_frz_model=None, model_branch="", output="out.json")  # fmt: skip
    finally:
        env.CUSTOM_OP_USE_JIT = jit
    return folder / "model.ckpt.pt"


def train_checkpoints(root: Path) -> dict[str, Path]:
    """``{"single": ..., "multi": ...}``: DeePMD checkpoints trained here by DeePMD-kit."""
    data = root / "data"
    a = str(write_system(data / "a", 5, 4, seed=0))
    b = str(write_system(data / "b", 7, 4, seed=1))
    return {
        "single": _train(root / "single", single_task_input([a, b])),
        "multi": _train(root / "multi", multi_task_input([a], [b])),
    }
