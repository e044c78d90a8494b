"""MACE (``mace-torch==0.3.16``) behind the backbone interface: ``--pretrained mace:PATH.model``,
``mace:PATH.model:HEAD`` (a head of a multi-head model) and the foundation names
(``mace-mp-0``, ``mace-off-small``, ...: see :data:`mace_files.FOUNDATIONS`).

The pretrained ``ScaleShiftMACE`` is read once (see the loading policy in
:mod:`atomcollapse.models.adapters.mace_files`), its architecture taken as plain model
arguments (mace-torch's ``extract_config_mace_model``) and rebuilt with mace-torch's own classes,
which then get its weights. The pieces run on our batch:

- input graph: the batch's ``edge_index``/``shifts`` (``radius_graph`` at the model's
  ``r_max``); edge ``(i, j)`` sends from ``i`` to ``j`` along ``positions[j] - positions[i] +
  shifts``, MACE's own convention, so forces are -dE/dR by autograd through the positions
  (MACE differentiates the same energy);
- backbone: the node embedding (one-hot element -> scalars), the radial and spherical-harmonic
  edge embeddings, and the interaction + product blocks, one per layer;
- features: ``layers = [embedding, layer1 .. layerL]``, each the l = 0 (scalar, even) channels
  of that layer's node features (the collapse measures and property heads read scalars; the
  l > 0 channels are kept for the energy head in :class:`MaceFeatures`); ``node`` = the last
  layer's scalars (the last MACE layer is all scalars);
- :class:`MaceEnergyHead`, the energy head that MFT keeps training: MACE's readouts, one per
  layer (linear readouts of layers 1..L-1 and the MLP readout of layer L), summed per atom with
  the ZBL pair repulsion when the model has one, then MACE's per-head scale and shift, summed
  per structure, plus the per-element atomic energies E0: eV, as MACE. What trains: the
  readouts' weights (and the ZBL parameters when the model made them trainable). The scale,
  shift and E0 are buffers in MACE and stay as pretrained, as in MACE's own fine-tuning.
- a multi-head model (MACE's multi-head fine-tuning) is read through one head, chosen by name
  (``mace:PATH.model:HEAD``; without one, MACE's rule: the only head, else the one named
  "default"); the other heads' readout channels, scales and E0s stay in the weights, unused;
- parameter blocks: ``embedding`` (node embedding and the radial embedding), ``layer1..layerL``
  (interaction and product of one layer);
- ``reinitialize(seed)``: MACE's own initialisation of the same architecture under ``seed``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from atomcollapse.errors import InputError
from atomcollapse.models.adapters import mace_files
from atomcollapse.models.adapters.elements import element_table, species_of
from atomcollapse.models.base import AtomsBatch, Backbone, BackboneOutput
from atomcollapse.models.model import AtomisticModel

_BACKBONE = ("node_embedding", "radial_embedding", "spherical_harmonics", "interactions",
             "products")  # fmt: skip


@dataclass
class MaceFeatures(BackboneOutput):
    """:class:`BackboneOutput` plus each layer's full node features (all irreps), which MACE's
    readouts read."""

    irreps: list[torch.Tensor] = field(default_factory=list)


def _head_index(config: dict[str, Any], head: str | None, source: str) -> tuple[str, int]:
    """``(name, index)`` of the head to use: the one named, else MACE's calculator's rule."""
    heads = [str(h) for h in config["heads"]]
    if head is None:
        if len(heads) == 1:
            head = heads[0]
        else:
            default = [h for h in heads if h.lower() == "default"]
            if not default:
                raise InputError(
                    f"the MACE model has several heads; name one ({source}:HEAD): "
                    f"{', '.join(heads)}"
                )
            head = default[0]
    if head not in heads:
        raise InputError(f"the MACE model has no head {head!r}; its heads: {', '.join(heads)}")
    return head, heads.index(head)


def _scalar_channels(irreps: Any) -> list[int]:
    """Indices of the l = 0, even-parity channels of an e3nn irreps layout."""
    out: list[int] = []
    for (mul, ir), sl in zip(irreps, irreps.slices(), strict=True):
        if ir.l == 0 and ir.p == 1:
            out.extend(range(sl.start, sl.start + mul))
    return out


@functools.lru_cache(maxsize=4)
def _template(key: str) -> nn.Module:
    """One built model per architecture (a build compiles e3nn's TorchScript: seconds)."""
    return mace_files.build(json.loads(key))


def _pieces(config: dict[str, Any], names: tuple[str, ...]) -> dict[str, nn.Module]:
    """Copies of the named modules of a MACE model of ``config`` (weights: MACE's initial ones
    of the cached build, to be replaced by pretrained or :meth:`reinitialize`d ones)."""
    model = _template(json.dumps(config, sort_keys=True))
    return {name: copy.deepcopy(getattr(model, name)) for name in names if hasattr(model, name)}


class MaceBackbone(Backbone):
    """MACE's embeddings and interaction/product layers."""

    table: torch.Tensor

    def __init__(self, *, config: dict[str, Any], head: str | None = None) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        self.head, _ = _head_index(config, head, "mace:PATH.model")
        parts = _pieces(config, _BACKBONE)
        self.node_embedding = parts["node_embedding"]
        self.radial_embedding = parts["radial_embedding"]
        self.spherical_harmonics = parts["spherical_harmonics"]
        self.interactions = cast(nn.ModuleList, parts["interactions"])
        self.products = cast(nn.ModuleList, parts["products"])
        zs = [int(z) for z in config["atomic_numbers"]]
        self.elements = tuple(sorted(zs))
        self.n_species = len(zs)
        self.register_buffer("atomic_numbers", torch.tensor(zs), persistent=False)
        self.register_buffer("table", element_table(zs), persistent=False)
        self.cutoff = float(config["r_max"])
        self.scalars = [_scalar_channels(cast(Any, p).linear.irreps_out) for p in self.products]
        self.feature_dim = len(self.scalars[-1])
        self.float()

    def forward(self, batch: AtomsBatch) -> MaceFeatures:
        species = species_of(batch, self.table, "the MACE model")
        pos = batch.positions
        sender, receiver = batch.edge_index[0], batch.edge_index[1]
        vectors = pos.index_select(0, receiver) - pos.index_select(0, sender)
        vectors = vectors + batch.shifts.to(pos.dtype)
        lengths = torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
        attrs = nn.functional.one_hot(species, self.n_species).to(pos.dtype)
        h = self.node_embedding(attrs)
        edge_attrs = self.spherical_harmonics(vectors)
        edge_feats, cutoff = self.radial_embedding(
            lengths, attrs, batch.edge_index, self.atomic_numbers
        )
        layers, full = [h], []
        for i, (interaction, product) in enumerate(
            zip(self.interactions, self.products, strict=True)
        ):
            h, sc = interaction(
                node_attrs=attrs, node_feats=h, edge_attrs=edge_attrs, edge_feats=edge_feats,
                edge_index=batch.edge_index, cutoff=cutoff, first_layer=(i == 0),
            )  # fmt: skip
            h = product(node_feats=h, sc=sc, node_attrs=attrs)
            full.append(h)
            scalars = self.scalars[i]
            layers.append(h if len(scalars) == h.shape[1] else h[:, scalars])
        return MaceFeatures(node=layers[-1], layers=layers, irreps=full)

    def parameter_blocks(self) -> list[tuple[str, list[nn.Parameter]]]:
        embedding = [*self.node_embedding.parameters(), *self.radial_embedding.parameters(),
                     *self.spherical_harmonics.parameters()]  # fmt: skip
        blocks = [("embedding", embedding)]
        blocks += [
            (f"layer{k + 1}", [*inter.parameters(), *prod.parameters()])
            for k, (inter, prod) in enumerate(zip(self.interactions, self.products, strict=True))
        ]
        return blocks

    def model_args(self) -> dict:
        return {"type": "mace", "config": copy.deepcopy(self.config), "head": self.head}

    def reinitialize(self, seed: int) -> None:
        """MACE's own initialisation of this architecture, drawn under ``seed`` (the scratch
        arm); the constants (radial basis, symmetric-contraction bases) are the same."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = mace_files.build(self.config)
        state = {k: v for k, v in fresh.state_dict().items() if k.split(".")[0] in _BACKBONE}
        self.load_state_dict(state, strict=False)


class MaceEnergyHead(nn.Module):
    """MACE's readouts (all layers), pair repulsion, scale/shift and E0s; (B,) energies in eV."""

    table: torch.Tensor

    def __init__(self, feature_dim: int, *, config: dict[str, Any], head: str | None = None):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.head, self.head_index = _head_index(config, head, "mace:PATH.model")
        self.feature_dim = feature_dim
        parts = _pieces(config, ("readouts", "scale_shift", "atomic_energies_fn",
                                 "pair_repulsion_fn"))  # fmt: skip
        self.readouts = cast(nn.ModuleList, parts["readouts"])
        self.scale_shift = parts["scale_shift"]
        self.atomic_energies = parts["atomic_energies_fn"]
        self.pair_repulsion = parts.get("pair_repulsion_fn")
        zs = [int(z) for z in config["atomic_numbers"]]
        self.n_species = len(zs)
        self.register_buffer("atomic_numbers", torch.tensor(zs), persistent=False)
        self.register_buffer("table", element_table(zs), persistent=False)
        self.float()

    def _apply(self, fn, recurse=True):
        """Moves with the module but keeps the E0s (thousands of eV for molecules) in float64:
        float32 would round them by ~1e-4 eV, and cast back they would stay rounded."""
        block = self.atomic_energies._buffers
        exact = block["atomic_energies"]
        super()._apply(fn, recurse)
        if exact is not None:
            moved = block["atomic_energies"]
            block["atomic_energies"] = exact.to(device=moved.device, dtype=torch.float64)
        return self

    def head_args(self) -> dict:
        return {"type": "mace-energy", "feature_dim": self.feature_dim,
                "config": copy.deepcopy(self.config), "head": self.head}  # fmt: skip

    def forward(self, features: BackboneOutput, batch: AtomsBatch) -> torch.Tensor:
        if not isinstance(features, MaceFeatures):
            raise TypeError("the MACE energy head needs the MACE backbone's features")
        species = species_of(batch, self.table, "the MACE model")
        dtype = features.node.dtype
        attrs = nn.functional.one_hot(species, self.n_species).to(dtype)
        heads = torch.full_like(species, self.head_index)
        k = self.head_index
        per_atom = torch.zeros_like(features.node[:, 0])
        if self.pair_repulsion is not None:
            pos = batch.positions
            i, j = batch.edge_index[0], batch.edge_index[1]
            vec = pos.index_select(0, j) - pos.index_select(0, i) + batch.shifts.to(pos.dtype)
            lengths = torch.linalg.vector_norm(vec, dim=1, keepdim=True)
            per_atom = per_atom + self.pair_repulsion(
                lengths, attrs, batch.edge_index, self.atomic_numbers
            )
        for n, readout in enumerate(self.readouts):
            feats = features.irreps[-1 if len(self.readouts) == 1 else n]
            per_atom = per_atom + readout(feats, heads)[:, k]
        per_atom = self.scale_shift(per_atom, heads) + self.atomic_energies(attrs)[:, k]
        return per_atom.new_zeros(batch.n_structures).index_add_(0, batch.batch, per_atom)


BACKBONES = {"mace": MaceBackbone}
HEADS = {"mace-energy": MaceEnergyHead}


def weights_present(name: str) -> bool:
    """Whether ``name``'s weights can be read without a download: a foundation model in MACE's
    cache (a ``mace:PATH`` name: whether the file exists)."""
    path, _, foundation = mace_files.split_name(name)
    if not foundation:
        return Path(path).is_file()
    return (
        path in mace_files.FOUNDATIONS
        and mace_files.foundation_path(path, download=False).is_file()
    )


def load(name: str) -> tuple[AtomisticModel, dict]:
    """A MACE model (``mace:PATH.model[:HEAD]`` or a foundation name) with its energy head,
    and its meta (elements, source, weights hash, head, model args)."""
    from atomcollapse.artifacts import sha256_file
    from atomcollapse.constants import SYMBOLS
    from atomcollapse.models.adapters import package_version, weights_hash

    where, head, foundation = mace_files.split_name(name)
    path = mace_files.foundation_path(where) if foundation else Path(where)
    pretrained = mace_files.read_model_file(path)
    config = mace_files.plain_config(pretrained)
    try:
        head, _ = _head_index(config, head, where if foundation else "mace:PATH.model")
    except InputError as e:
        raise InputError(e.problem, file=path) from None
    backbone = MaceBackbone(config=config, head=head)
    model = AtomisticModel(backbone, {"energy": MaceEnergyHead(backbone.feature_dim,
                                                               config=config, head=head)})  # fmt: skip
    state = {f"backbone.{k}": v for k, v in pretrained.state_dict().items()
             if k.split(".")[0] in _BACKBONE}  # fmt: skip
    head_map = {"readouts": "readouts", "scale_shift": "scale_shift",
                "atomic_energies_fn": "atomic_energies", "pair_repulsion_fn": "pair_repulsion"}  # fmt: skip
    for k, v in pretrained.state_dict().items():
        top, _, rest = k.partition(".")
        if top in head_map:
            state[f"heads.energy.{head_map[top]}.{rest}"] = v
    with contextlib.redirect_stdout(sys.stderr):
        missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"the MACE weights do not fit the rebuilt architecture (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})",
            file=path,
        )
    meta = {"kind": "pretrained", "name": name, "head": head,
            "elements": [SYMBOLS[z] for z in backbone.elements],
            "source": f"mace-torch {package_version('mace-torch')}", "file": str(path),
            "file_sha256": sha256_file(path), "hash": weights_hash(model),
            "model_args": {"backbone": backbone.model_args(), "heads": model.head_args()}}  # fmt: skip
    return model, meta
