"""ANI-1x / ANI-1ccx (``torchani==2.0``, weights inside the wheel) behind the backbone interface.

ANI maps each atom's environment to an atomic environment vector (AEV: radial terms to 5.2 A,
angular terms to 3.5 A; 384 numbers, no parameters) and feeds it to a per-element network
``AEV -> h1 -> h2 -> h3 -> energy`` (CELU activations). ANI-1x is an ensemble of 8 such sets.

- Features: ``layers = [AEV (384), h1, h2, h3]``; ``node = h3``. The element networks differ in
  width for h1 (H 160, C 144, N/O 128) and h2 (H 128, others 112): narrower elements are padded
  with zeros to the widest; h3 is 96 wide for all. With the ensemble (``model_index=None``) each
  layer is the concatenation of the members' layers (``node`` is 8 x 96 = 768 wide), so that the
  ensemble energy is an exact linear function of ``node``.
- :class:`AniEnergyHead` is the members' pretrained last linear layers (averaged as the ensemble
  averages them) plus the fixed self-atomic energies; it returns eV (torchani works in Hartree)
  and trains like any energy head (MFT); forces come from autograd as for every model.
- Parameter blocks: ``embedding`` (the AEV: no parameters), ``layer1..layer3`` (the k-th linear
  layer of every element network of every member).
- ANI computes its own neighbours from the positions (its cutoffs, not the batch's graph);
  structures of a batch stay independent. Only H, C, N, O; no periodic structures.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.metadata
import importlib.resources
import sys
import types
from collections.abc import Iterator
from typing import Any, cast

import torch
from torch import nn

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.errors import InputError
from atomcollapse.models.adapters.elements import element_table, species_of
from atomcollapse.models.base import Backbone, BackboneOutput
from atomcollapse.models.model import AtomisticModel
from atomcollapse.units import HARTREE_EV

#: pretrained weight sets: name -> torchani builtin model class
WEIGHTS = {"ani1x": "ANI1x", "ani1ccx": "ANI1ccx"}
ELEMENTS = (1, 6, 7, 8)
SYMBOLS = ("H", "C", "N", "O")
INSTALL = "pip install 'atomcollapse[ani]' (torchani==2.0, lark-parser)"


@contextlib.contextmanager
def _pkg_resources_stand_in() -> Iterator[None]:
    """torchani 2.0 imports ``pkg_resources`` (gone from setuptools >= 81) for two lookups;
    while it is imported, serve those from importlib when the real module is absent."""
    try:
        import pkg_resources  # noqa: F401

        yield
        return
    except ImportError:
        pass
    stand_in = types.ModuleType("pkg_resources")

    class _Distribution:
        def __init__(self, name: str) -> None:
            self.version = importlib.metadata.version(name)

    stand_in.resource_filename = lambda package, path: str(  # type: ignore[attr-defined]
        importlib.resources.files(package).joinpath(path)
    )
    stand_in.get_distribution = _Distribution  # type: ignore[attr-defined]
    stand_in.DistributionNotFound = importlib.metadata.PackageNotFoundError  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]


def _torchani():
    try:
        with _pkg_resources_stand_in():
            import torchani
    except ImportError as e:
        raise InputError(f"the ANI adapter needs torchani ({e}); {INSTALL}") from None
    if not torchani.__dict__.get("__version__", "2.0").startswith("2.0"):
        raise InputError(f"the ANI adapter needs torchani 2.0, found {torchani.__version__}")
    return torchani


@functools.lru_cache(maxsize=2)
def _builtin(weights: str) -> Any:
    """torchani's builtin ensemble (AEV computer, networks, self energies); loaded once.

    Typed ``Any``: torchani ships no type information.
    """
    if weights not in WEIGHTS:
        raise InputError(f"unknown ANI weights {weights!r}; known: {', '.join(WEIGHTS)}")
    model = getattr(_torchani().models, WEIGHTS[weights])(periodic_table_index=False)
    if tuple(model.species) != SYMBOLS:
        raise InputError(f"unexpected ANI species {model.species} (expected {SYMBOLS})")
    return model


def _members(weights: str, model_index: int | None) -> list[nn.ModuleDict]:
    ensemble = _builtin(weights).neural_networks
    if model_index is None:
        return list(ensemble)
    if not 0 <= model_index < len(ensemble):
        raise InputError(f"ANI model_index must be in 0..{len(ensemble) - 1}, got {model_index}")
    return [ensemble[model_index]]


def _linears(network: nn.Module) -> list[nn.Linear]:
    return [m for m in cast(nn.Sequential, network) if isinstance(m, nn.Linear)]


class AniBackbone(Backbone):
    """The AEV featuriser and hidden layers of ANI (``weights`` ``ani1x`` or ``ani1ccx``).

    ``model_index`` picks one ensemble member (0..7, 8x cheaper); ``None`` uses all eight.
    """

    table: torch.Tensor
    elements = ELEMENTS

    def __init__(self, *, weights: str = "ani1x", model_index: int | None = None) -> None:
        super().__init__()
        members = _members(weights, model_index)
        self.weights = weights
        self.model_index = model_index
        self.aev = copy.deepcopy(_builtin(weights).aev_computer)
        self.cutoff = float(max(self.aev.Rcr, self.aev.Rca))
        self.networks = nn.ModuleDict(
            {
                sym: nn.ModuleList(
                    nn.Sequential(*copy.deepcopy(list(cast(nn.Sequential, m[sym])))[:-1])
                    for m in members
                )
                for sym in SYMBOLS
            }
        )
        first = [_linears(self._nets(s)[0]) for s in SYMBOLS]
        self.widths = [max(layers[k].out_features for layers in first) for k in range(3)]
        self.n_members = len(members)
        self.feature_dim = self.widths[-1] * self.n_members
        self.register_buffer("table", element_table(ELEMENTS), persistent=False)

    def forward(self, batch: AtomsBatch) -> BackboneOutput:
        if batch.pbc is not None and bool(batch.pbc.any()):
            raise InputError("ANI does not support periodic structures (molecules only)")
        species = species_of(batch, self.table, f"ANI ({self.weights})")
        aev = self._aev(batch, species)
        n = aev.shape[0]
        layers = [aev]
        outs = [aev.new_zeros((n, w * self.n_members)) for w in self.widths]
        for s, sym in enumerate(SYMBOLS):
            idx = torch.nonzero(species == s).flatten()
            if idx.numel() == 0:
                continue
            x = aev.index_select(0, idx)
            per_member: list[list[torch.Tensor]] = [[] for _ in self.widths]
            for net in self._nets(sym):
                h = x
                for k, module in enumerate(net):
                    h = module(h)
                    if k % 2 == 1:
                        depth = k // 2
                        pad = self.widths[depth] - h.shape[1]
                        per_member[depth].append(nn.functional.pad(h, (0, pad)))
            for depth, parts in enumerate(per_member):
                outs[depth] = outs[depth].index_copy(0, idx, torch.cat(parts, dim=1))
        layers.extend(outs)
        return BackboneOutput(node=outs[-1], layers=layers)

    def _nets(self, sym: str) -> list[nn.Sequential]:
        """The element networks of ``sym``, one per ensemble member."""
        return [cast(nn.Sequential, net) for net in cast(nn.ModuleList, self.networks[sym])]

    def _aev(self, batch: AtomsBatch, species: torch.Tensor) -> torch.Tensor:
        """AEVs (N, 384) of the packed atoms, via torchani's padded (B, A) layout."""
        counts = batch.offsets[1:] - batch.offsets[:-1]
        n_struct, width = batch.n_structures, int(counts.max()) if counts.numel() else 0
        local = (
            torch.arange(batch.numbers.numel(), device=species.device) - batch.offsets[batch.batch]
        )
        padded = torch.full((n_struct, width), -1, dtype=torch.long, device=species.device)
        padded[batch.batch, local] = species
        pos = batch.positions.new_zeros((n_struct, width, 3))
        pos = pos.index_put((batch.batch, local), batch.positions)
        aevs = self.aev((padded, pos)).aevs
        return aevs[batch.batch, local]

    def parameter_blocks(self) -> list[tuple[str, list[nn.Parameter]]]:
        blocks: list[tuple[str, list[nn.Parameter]]] = [("embedding", [])]
        for k in range(3):
            params = [
                p
                for sym in SYMBOLS
                for net in self._nets(sym)
                for p in _linears(net)[k].parameters()
            ]
            blocks.append((f"layer{k + 1}", params))
        return blocks

    def model_args(self) -> dict:
        return {"type": "ani", "weights": self.weights, "model_index": self.model_index}

    def reinitialize(self, seed: int) -> None:
        """Random weights (torch's default for linear layers) from ``seed``: the scratch arm."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for sym in SYMBOLS:
                for net in self._nets(sym):
                    for lin in _linears(net):
                        lin.reset_parameters()


class AniEnergyHead(nn.Module):
    """ANI's pretrained output layers and self-atomic energies; (B,) energies in eV.

    Per atom of species ``s``: ``E_i = HARTREE_EV * (w_s . h3_i + b_s + E_self[s])``; ``w_s``
    concatenates the members' last-layer weights divided by the ensemble size. The weights stay
    in Hartree units (as pretrained); the self energies (Hartree) are fixed constants of the
    weight set, not parameters, so they keep full precision whatever the model's dtype.
    """

    table: torch.Tensor

    def __init__(
        self, feature_dim: int, *, weights: str = "ani1x", model_index: int | None = None
    ) -> None:
        super().__init__()
        members = _members(weights, model_index)
        self.weights = weights
        self.model_index = model_index
        self.feature_dim = feature_dim
        last = [[_linears(m[sym])[-1] for m in members] for sym in SYMBOLS]
        weight = torch.stack([torch.cat([lin.weight[0] for lin in ls]) / len(ls) for ls in last])
        if weight.shape[1] != feature_dim:
            raise ValueError(f"ANI head width is {weight.shape[1]}, not {feature_dim}")
        bias = torch.stack([torch.stack([lin.bias[0] for lin in ls]).mean() for ls in last])
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())
        self.self_energies = tuple(float(e) for e in _builtin(weights).energy_shifter.self_energies)
        self.register_buffer("table", element_table(ELEMENTS), persistent=False)

    def head_args(self) -> dict:
        return {"type": "ani-energy", "feature_dim": self.feature_dim, "weights": self.weights,
                "model_index": self.model_index}  # fmt: skip

    def forward(self, features: BackboneOutput, batch: AtomsBatch) -> torch.Tensor:
        species = species_of(batch, self.table, f"ANI ({self.weights})")
        w = self.weight.index_select(0, species)
        per_atom = (features.node * w).sum(dim=1) + self.bias.index_select(0, species)
        fixed = torch.tensor(self.self_energies, dtype=per_atom.dtype, device=per_atom.device)
        per_atom = per_atom + fixed.index_select(0, species)
        out = per_atom.new_zeros(batch.n_structures).index_add_(0, batch.batch, per_atom)
        return out * HARTREE_EV


BACKBONES = {"ani": AniBackbone}
HEADS = {"ani-energy": AniEnergyHead}


def load(name: str) -> tuple[AtomisticModel, dict]:
    """``ani1x``, ``ani1ccx`` (8-member ensembles) or ``ani1x:K`` (member K) with its energy
    head, and its meta (elements, source package, weights hash, model args)."""
    from atomcollapse.models.adapters import package_version, weights_hash

    weights, _, index = name.partition(":")
    model_index = int(index) if index else None
    backbone = AniBackbone(weights=weights, model_index=model_index)
    head = AniEnergyHead(backbone.feature_dim, weights=weights, model_index=model_index)
    model = AtomisticModel(backbone, {"energy": head})
    meta = {"kind": "pretrained", "name": name, "elements": list(SYMBOLS),
            "source": f"torchani {package_version('torchani')}", "hash": weights_hash(model),
            "model_args": {"backbone": backbone.model_args(), "heads": model.head_args()}}  # fmt: skip
    return model, meta
