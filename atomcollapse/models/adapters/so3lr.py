"""SO3LR (``so3krates-torch==0.2.1``, weights inside the wheel) behind the backbone interface.

SO3LR is a So3krates Euclidean transformer (3 layers, 128 invariant features, spherical
harmonics of degree 1-4, cutoff 4.5 A) plus physical long-range terms. The adapter takes the
pretrained modules out of the package's pickled ``SO3LR`` model and runs them on our batch:

- input graph: the batch's ``edge_index``/``shifts`` (``radius_graph`` at ``cutoff`` = 4.5 A);
  edge vectors are formed here from the positions, so forces are -dE/dR by autograd;
- features: ``layers = [embedding, layer1, layer2, layer3]``, each the 128 invariant features
  per atom (the embedding: element embedding plus the charge and spin embeddings, divided by
  sqrt(3) as SO3LR does); ``node`` = the last layer's. Structures are taken as neutral singlets
  (QM9): total charge 0 and spin 0 enter the charge and spin embeddings, which then add exactly
  zero, as they do in SO3LR's calculator for an ``Atoms`` without charge or spin;
- :class:`So3lrEnergyHead` is everything after the features: the atomic-energy MLP with its
  per-element scales and shifts, ZBL repulsion (on the short-range graph), partial charges and
  Hirshfeld ratios predicted from the last-layer features, and the damped electrostatic and
  vdW-QDO dispersion energies on a long-range graph that the head builds from the positions
  (12 A, dispersion switched off over the last 2 A: the settings of ``SO3LRCalculator``). eV.
- parameter blocks: ``embedding`` (element, charge and spin embeddings; the radial basis has no
  parameters), ``layer1..layer3`` (one Euclidean transformer layer each).

What MFT trains when it trains this head: the atomic-energy MLP (128 -> 128 -> 1), the
per-element energy scales and shifts (118 each; learnable in SO3LR too), the ten ZBL
parameters, the partial-charge network (128 -> 128 -> 1 plus a per-element bias) and the
Hirshfeld-ratio network (128 -> 64 -> 64 plus per-element embeddings). The charges and Hirshfeld
ratios are functions of the backbone's last-layer features, so the energy gradient reaches the
backbone through the physical terms as well as through the MLP. The Coulomb and dispersion
formulas and their reference data (free-atom polarisabilities, C6) have no parameters.

Elements: H, C, N, O, F, P, S, Cl, the elements whose learned per-element energy scale moved
from its initial value (those in SO3LR's training data); others are refused. Periodic
structures work (both graphs carry periodic images; electrostatics are cut off at 12 A, not
summed by Ewald, as in the package's default).
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import math
import warnings
from typing import Any, cast

import torch
from torch import nn

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.data.neighbors import radius_graph
from atomcollapse.errors import InputError
from atomcollapse.models.adapters.elements import element_table, species_of
from atomcollapse.models.base import Backbone, BackboneOutput
from atomcollapse.models.model import AtomisticModel

WEIGHTS = ("so3lr",)
INSTALL = "pip install 'atomcollapse[so3lr]' (so3krates-torch==0.2.1)"
#: H, C, N, O, F, P, S, Cl
ELEMENTS = (1, 6, 7, 8, 9, 15, 16, 17)
#: long-range cutoff and dispersion damping width (A), as ``SO3LRCalculator`` sets them
LR_CUTOFF = 12.0
LR_DAMPING = 2.0
_N_ELEMENTS = 118  # one-hot width: atomic number Z -> column Z - 1
_HEAD_MODULES = (
    "atomic_energy_output_block", "zbl_repulsion", "partial_charges_output_block",
    "electrostatic_potential", "hirshfeld_output_block", "dispersion_potential",
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def _pretrained(weights: str) -> Any:
    """The package's pretrained ``SO3LR`` module (float32, eval); loaded once per process.

    Typed ``Any``: so3krates-torch ships no type information.
    """
    if weights not in WEIGHTS:
        raise InputError(f"unknown SO3LR weights {weights!r}; known: {', '.join(WEIGHTS)}")
    try:
        import so3krates_torch.modules.models  # noqa: F401  (classes of the pickled model)
    except ImportError as e:
        raise InputError(f"the SO3LR adapter needs so3krates-torch ({e}); {INSTALL}") from None
    # The one full unpickle in the package: so3krates-torch ships SO3LR only as a pickled module.
    # It is read from inside the installed package (never a path a user or a folder supplies).
    path = importlib.resources.files("so3krates_torch.pretrained.so3lr") / "so3lr.model"
    with warnings.catch_warnings(), importlib.resources.as_file(path) as file:
        warnings.simplefilter("ignore")
        model = torch.load(file, map_location="cpu", weights_only=False)
    needed = (*_HEAD_MODULES, "euclidean_transformers", "charge_embedding", "spin_embedding")
    if any(not hasattr(model, name) for name in needed):
        raise InputError(f"the SO3LR weights in so3krates-torch lack one of {', '.join(needed)}")
    return model.eval()


def _module(weights: str, name: str) -> nn.Module:
    return copy.deepcopy(getattr(_pretrained(weights), name))


def _one_hot(batch: AtomsBatch, dtype: torch.dtype) -> torch.Tensor:
    return nn.functional.one_hot(batch.numbers - 1, _N_ELEMENTS).to(dtype)


def _short_range(batch: AtomsBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """So3krates' edge vectors ``r_i - r_j`` (E, 3) for edges ``(i, j)`` and their lengths (E, 1).

    Our edge vector is ``positions[j] - positions[i] + shifts``; So3krates sends messages from
    ``j`` to the receiver ``i`` along minus that vector.
    """
    pos = batch.positions
    i, j = batch.edge_index[0], batch.edge_index[1]
    vec = pos.index_select(0, i) - pos.index_select(0, j) - batch.shifts.to(pos.dtype)
    return vec, torch.linalg.vector_norm(vec, dim=1, keepdim=True)


class So3lrBackbone(Backbone):
    """SO3LR's embeddings and Euclidean transformer layers (``weights="so3lr"``)."""

    table: torch.Tensor

    def __init__(self, *, weights: str = "so3lr") -> None:
        super().__init__()
        model = _pretrained(weights)
        self.weights = weights
        self.cutoff = float(model.r_max)
        self.feature_dim = int(model.num_features)
        self.elements = ELEMENTS
        self.avg_num_neighbors = float(model.avg_num_neighbors)
        self.embedding_scale = float(model.embedding_scale)
        self.embedding = _module(weights, "inv_feature_embedding")
        self.charge_embedding = _module(weights, "charge_embedding")
        self.spin_embedding = _module(weights, "spin_embedding")
        self.ev_embedding = _module(weights, "ev_embedding")
        self.radial_basis = _module(weights, "radial_embedding")
        self.spherical_harmonics = _module(weights, "spherical_harmonics")
        self.cutoff_fn = _module(weights, "cutoff_fn")
        self.layers = cast(nn.ModuleList, _module(weights, "euclidean_transformers"))
        self.register_buffer("table", element_table(ELEMENTS), persistent=False)

    def forward(self, batch: AtomsBatch) -> BackboneOutput:
        species_of(batch, self.table, "SO3LR")
        pos = batch.positions
        n_atoms, n_struct = batch.numbers.numel(), batch.n_structures
        vec, length = _short_range(batch)
        receivers, senders = batch.edge_index[0], batch.edge_index[1]
        sh = self.spherical_harmonics(vec / (length + 1e-8))
        cutoffs = self.cutoff_fn(length)
        rbf = self.radial_basis(length)
        onehot = _one_hot(batch, pos.dtype)
        neutral = pos.new_zeros(n_struct)  # total charge and 2 x spin of every structure
        h = (
            self.embedding(onehot)
            + self.charge_embedding(onehot, neutral, batch.batch, n_struct)
            + self.spin_embedding(onehot, neutral, batch.batch, n_struct)
        ) / self.embedding_scale
        ev = self.ev_embedding(
            sh_vectors=sh, cutoffs=cutoffs, receivers=receivers,
            avg_num_neighbors=self.avg_num_neighbors, num_nodes=n_atoms,
        )  # fmt: skip
        layers = [h]
        for layer in self.layers:
            h, ev = layer(
                inv_features=h, ev_features=ev, rbf=rbf, senders=senders, receivers=receivers,
                sh_vectors=sh, cutoffs=cutoffs,
            )  # fmt: skip
            layers.append(h)
        return BackboneOutput(node=h, layers=layers)

    def parameter_blocks(self) -> list[tuple[str, list[nn.Parameter]]]:
        embedding = [
            *self.embedding.parameters(), *self.charge_embedding.parameters(),
            *self.spin_embedding.parameters(), *self.radial_basis.parameters(),
        ]  # fmt: skip
        blocks = [("embedding", embedding)]
        blocks += [
            (f"layer{k + 1}", list(layer.parameters())) for k, layer in enumerate(self.layers)
        ]
        return blocks

    def model_args(self) -> dict:
        return {"type": "so3lr", "weights": self.weights}

    def reinitialize(self, seed: int) -> None:
        """Random weights from ``seed``, So3krates' (JAX) initialisation: every weight matrix
        normal with std 1/sqrt(fan-in), biases zero, layer norms the identity. The scratch arm."""
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.reset_parameters()
            norms = {id(p) for m in self.modules() if isinstance(m, nn.LayerNorm)
                     for p in m.parameters()}  # fmt: skip
            for p in self.parameters():
                if id(p) in norms:
                    continue
                if p.dim() == 1:
                    p.zero_()
                else:
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))


class So3lrEnergyHead(nn.Module):
    """SO3LR's energy: atomic-energy MLP, ZBL, electrostatics and dispersion; (B,) eV."""

    table: torch.Tensor

    def __init__(
        self,
        feature_dim: int,
        *,
        weights: str = "so3lr",
        lr_cutoff: float = LR_CUTOFF,
        lr_damping: float = LR_DAMPING,
    ) -> None:
        super().__init__()
        model = _pretrained(weights)
        if feature_dim != int(model.num_features):
            raise ValueError(f"SO3LR head width is {model.num_features}, not {feature_dim}")
        if not 0 < lr_damping < lr_cutoff:
            raise ValueError(f"need 0 < lr_damping < lr_cutoff, got {lr_damping}, {lr_cutoff}")
        self.weights = weights
        self.feature_dim = feature_dim
        self.lr_cutoff = float(lr_cutoff)
        self.lr_damping = float(lr_damping)
        self.electrostatic_scale = float(model.electrostatic_energy_scale)
        self.dispersion_scale = float(model.dispersion_energy_scale)
        self.cutoff_fn = _module(weights, "cutoff_fn")
        self.atomic_energy = _module(weights, "atomic_energy_output_block")
        self.zbl = _module(weights, "zbl_repulsion")
        self.charges = _module(weights, "partial_charges_output_block")
        self.electrostatics = _module(weights, "electrostatic_potential")
        self.hirshfeld = _module(weights, "hirshfeld_output_block")
        self.dispersion = _module(weights, "dispersion_potential")
        self.register_buffer("table", element_table(ELEMENTS), persistent=False)

    def head_args(self) -> dict:
        return {"type": "so3lr-energy", "feature_dim": self.feature_dim, "weights": self.weights,
                "lr_cutoff": self.lr_cutoff, "lr_damping": self.lr_damping}  # fmt: skip

    def forward(self, features: BackboneOutput, batch: AtomsBatch) -> torch.Tensor:
        species_of(batch, self.table, "SO3LR")
        h, z = features.node, batch.numbers
        n_atoms, n_struct = z.numel(), batch.n_structures
        per_atom = self.atomic_energy(h, {"node_attrs": _one_hot(batch, h.dtype)}).squeeze(-1)
        _, length = _short_range(batch)
        per_atom = per_atom + self.zbl(
            atomic_numbers=z, cutoffs=self.cutoff_fn(length), senders=batch.edge_index[1],
            receivers=batch.edge_index[0], lengths=length, num_nodes=n_atoms,
        ).squeeze(-1)  # fmt: skip
        receivers, senders, length_lr = self._long_range(batch)
        charges = self._partial_charges(h, batch)
        per_atom = per_atom + self.electrostatics(
            partial_charges=charges, senders_lr=senders, receivers_lr=receivers,
            lengths_lr=length_lr, num_nodes=n_atoms, cutoff_lr=self.lr_cutoff,
            electrostatic_energy_scale=self.electrostatic_scale,
        ).squeeze(-1)  # fmt: skip
        ratios = self.hirshfeld(inv_features=h, atomic_numbers=z)
        per_atom = per_atom + self.dispersion(
            hirshfeld_ratios=ratios, atomic_numbers=z, senders_lr=senders,
            receivers_lr=receivers, lengths_lr=length_lr, num_nodes=n_atoms,
            cutoff_lr=self.lr_cutoff, cutoff_lr_damping=self.lr_damping,
            dispersion_energy_scale=self.dispersion_scale,
        ).squeeze(-1)  # fmt: skip
        return per_atom.new_zeros(n_struct).index_add_(0, batch.batch, per_atom)

    def _partial_charges(self, h: torch.Tensor, batch: AtomsBatch) -> torch.Tensor:
        """SO3LR's partial charges (e) of neutral structures: the network's charge per atom plus
        a per-element bias, less the structure's mean so that each structure sums to zero.

        The package's own block forms 1/N in torch's default dtype (float32 unless changed);
        here the correction is taken in the features' dtype, so float64 runs stay float64.
        """
        net = cast(nn.Sequential, self.charges.transform_inv_features)
        bias = cast(nn.Embedding, self.charges.atomic_embedding)
        raw = net(h).squeeze(-1) + bias(batch.numbers).squeeze(-1)
        total = raw.new_zeros(batch.n_structures).index_add_(0, batch.batch, raw)
        counts = (batch.offsets[1:] - batch.offsets[:-1]).to(raw.dtype)
        return raw - (total / counts).index_select(0, batch.batch)

    def _long_range(self, batch: AtomsBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Receivers, senders and lengths (E,) of every pair closer than ``lr_cutoff``."""
        pos = batch.positions
        edge_index, shifts = radius_graph(
            pos.detach(), batch.offsets, self.lr_cutoff, batch.cell, batch.pbc
        )
        i, j = edge_index[0], edge_index[1]
        vec = pos.index_select(0, j) - pos.index_select(0, i) + shifts.to(pos.dtype)
        return i, j, torch.linalg.vector_norm(vec, dim=1)


BACKBONES = {"so3lr": So3lrBackbone}
HEADS = {"so3lr-energy": So3lrEnergyHead}


def load(name: str) -> tuple[AtomisticModel, dict]:
    """SO3LR (weights inside so3krates-torch) with its full energy head, and its meta."""
    from atomcollapse.constants import SYMBOLS
    from atomcollapse.models.adapters import package_version, weights_hash

    backbone = So3lrBackbone(weights=name)
    model = AtomisticModel(backbone, {"energy": So3lrEnergyHead(backbone.feature_dim,
                                                                 weights=name)})  # fmt: skip
    meta = {"kind": "pretrained", "name": name, "elements": [SYMBOLS[z] for z in ELEMENTS],
            "source": f"so3krates-torch {package_version('so3krates-torch')}",
            "hash": weights_hash(model),
            "model_args": {"backbone": backbone.model_args(), "heads": model.head_args()}}  # fmt: skip
    return model, meta
