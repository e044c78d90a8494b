"""SevenNet (``sevenn``, weights inside the wheel) behind the backbone interface.

Weight sets: ``sevennet-0`` and ``sevennet-l3i5`` (MPtrj), and the multi-fidelity
``sevennet-mf-0:MODAL`` (MODAL = ``PBE`` or ``R2SCAN``, the checkpoint's ``_modal_map``). The MF
model conditions on the modal by a one-hot of it appended to the input of both self-interaction
linear maps of every block and of the readout's first linear map, and by a per-modal per-element
energy shift (the per-element scale is shared). One adapted model runs one modal, fixed at load
and recorded in its ``model_args``.

SevenNet-0 is a NequIP-style E(3)-equivariant network (5 interaction blocks, l <= 2, 128 scalar
channels, cutoff 5.0 A) over 89 elements. The adapter takes the pretrained modules out of
sevenn's ``AtomGraphSequential`` and runs them on our batch:

- input graph: the batch's ``edge_index``/``shifts`` (``radius_graph`` at ``cutoff`` = 5.0 A);
  edge vectors ``positions[j] - positions[i] + shifts`` are formed here, so forces are -dE/dR by
  autograd through the positions (sevenn's calculator differentiates the edge vectors instead:
  the same numbers);
- features: ``layers = [embedding (128 scalars), block1 .. block5]`` with the l = 0 (scalar)
  channels of each block's output; ``node`` = the last block's output (all scalars, 128);
- :class:`SevenNetEnergyHead` is the pretrained readout (two linear maps) with the per-element
  shift and scale, summed per structure: eV, as sevenn;
- parameter blocks: ``embedding`` (one-hot linear map and the radial basis), ``layer1..layer5``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import warnings
from typing import Any, cast

import torch
from torch import nn

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.errors import InputError
from atomcollapse.models.adapters.elements import element_table, species_of
from atomcollapse.models.base import Backbone, BackboneOutput
from atomcollapse.models.model import AtomisticModel

#: our weight names -> sevenn's pretrained names (resolved to the files inside the installed
#: package, never to a file of that name in the current folder)
WEIGHTS = {"sevennet-0": "7net-0", "sevennet-l3i5": "7net-l3i5", "sevennet-mf-0": "7net-mf-0"}
INSTALL = "pip install 'atomcollapse[sevenn]' (sevenn==0.13.0)"
_HEAD_MODULES = ("reduce_input_to_hidden", "reduce_hidden_to_energy", "rescale_atomic_energy")
_CONSTANT = re.compile(r"^(_w3j_\d+_\d+_\d+|_tensor_constant\d+)$")


def _sevenn_util():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import sevenn.util
    except ImportError as e:
        raise InputError(f"the SevenNet adapter needs sevenn ({e}); {INSTALL}") from None
    return sevenn.util


@functools.lru_cache(maxsize=4)
def _checkpoint(weights: str) -> Any:
    """sevenn's checkpoint object (config and float32 weights) of ``weights``."""
    if weights not in WEIGHTS:
        raise InputError(f"unknown SevenNet weights {weights!r}; known: {', '.join(WEIGHTS)}")
    util = _sevenn_util()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return util.load_checkpoint(_packaged_path(util, weights))


def modals(weights: str) -> dict[str, int]:
    """The modal (fidelity) names of ``weights`` and their indices; empty for a single-fidelity
    weight set."""
    return {
        str(k): int(v) for k, v in (_checkpoint(weights).config.get("_modal_map") or {}).items()
    }


def resolve_modal(weights: str, modal: str | None) -> str | None:
    """The checkpoint's spelling of ``modal`` (matched ignoring case); InputError naming the
    modals when a multi-fidelity weight set gets none or an unknown one, or a single-fidelity
    one gets any."""
    known = modals(weights)
    if not known:
        if modal is not None:
            raise InputError(f"SevenNet weights {weights!r} have no modals (got {modal!r})")
        return None
    names = ", ".join(known)
    if not modal:
        raise InputError(
            f"{weights} is multi-fidelity: name a modal, --pretrained {weights}:MODAL with MODAL "
            f"one of {names}"
        )
    for name in known:
        if name.lower() == modal.strip().lower():
            return name
    raise InputError(f"unknown modal {modal!r} of {weights}; its modals: {names}")


@functools.lru_cache(maxsize=1)
def _pretrained(weights: str) -> tuple[nn.Module, dict]:
    """sevenn's model (float64) and its config for ``weights``; loaded once per process.

    sevenn builds it in float32, where e3nn folds float32-rounded constants (Wigner 3j times path
    weights) into its generated tensor-product code. The architecture is built a second time with
    float64 as the default dtype and given the pretrained weights, so those constants are exact.
    """
    checkpoint = _checkpoint(weights)
    from sevenn.model_build import build_E3_equivariant_model

    default = torch.get_default_dtype()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = checkpoint.build_model()
        try:
            torch.set_default_dtype(torch.float64)
            model = build_E3_equivariant_model(checkpoint.config)
        finally:
            torch.set_default_dtype(default)
    state = {k: v for k, v in trained.state_dict().items() if not _is_constant(k)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not _is_constant(k) for k in missing):
        raise InputError(f"SevenNet weights {weights!r} do not fit the rebuilt model")
    model.double().eval()
    return model, dict(checkpoint.config)


def _packaged_path(util: Any, weights: str) -> str:
    """The absolute path of ``weights`` inside the installed sevenn package.

    ``sevenn.util.load_checkpoint("7net-0")`` would first take (and fully unpickle) a file named
    ``7net-0`` in the current folder; an absolute path inside the package cannot be shadowed.
    """
    import os.path

    path = os.path.abspath(util.pretrained_name_to_path(WEIGHTS[weights]))
    if not os.path.isfile(path):
        raise InputError(f"SevenNet weights {weights!r} are not in the installed sevenn", file=path)
    return path


def _is_constant(name: str) -> bool:
    return _CONSTANT.match(name.rsplit(".", 1)[-1]) is not None


def _modules(weights: str) -> tuple[dict[str, nn.Module], dict]:
    model, config = _pretrained(weights)
    return cast("dict[str, nn.Module]", dict(copy.deepcopy(model)._modules)), config


class _ExactConstants(nn.Module):
    """Keeps e3nn's generated constants at float64 precision whatever the module's dtype.

    A float32 copy of a constant is what sevenn uses; casting it back to float64 would leave it
    rounded and the float64 model equivariant only to ~1e-8. After every change of dtype or
    device, and after loading a state dict, the constants are re-cast from float64 originals.
    """

    def _record_constants(self) -> None:
        self._exact = {
            name: buf.detach().to("cpu", torch.float64).clone()
            for name, buf in self.named_buffers()
            if buf.is_floating_point() and _is_constant(name)
        }
        self.register_load_state_dict_post_hook(lambda module, _: module._restore_constants())

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if hasattr(self, "_exact"):
            self._restore_constants()
        return self

    def _restore_constants(self) -> None:
        for name, exact in self._exact.items():
            owner_name, _, leaf = name.rpartition(".")
            owner = self.get_submodule(owner_name)
            buf = owner._buffers[leaf]
            assert buf is not None  # recorded from named_buffers(), which skips None
            owner._buffers[leaf] = exact.to(device=buf.device, dtype=buf.dtype)


def _scalar_channels(irreps) -> list[int]:
    """Indices of the l = 0, even-parity channels in an e3nn irreps layout."""
    out: list[int] = []
    for (mul, ir), sl in zip(irreps, irreps.slices(), strict=True):
        if ir.l == 0 and ir.p == 1:
            out.extend(range(sl.start, sl.start + mul))
    return out


class _Modal:
    """The fixed modal of a multi-fidelity model, as sevenn's modules read it from the graph."""

    def _set_modal(self, weights: str, modal: str | None) -> None:
        self.modal = resolve_modal(weights, modal)
        known = modals(weights)
        self.n_modals = len(known)
        self.modal_index = known[self.modal] if self.modal is not None else -1

    def _modal_inputs(self, batch: AtomsBatch, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """``modal_type`` (B,) and its one-hot ``modal_attr`` (B, n_modals); none without modals."""
        if self.modal is None:
            return {}
        index = torch.full((batch.n_structures,), self.modal_index, device=batch.batch.device)
        onehot = nn.functional.one_hot(index, self.n_modals).to(dtype)
        return {"modal_type": index, "modal_attr": onehot, "batch": batch.batch}

    def _modal_args(self) -> dict[str, str]:
        return {} if self.modal is None else {"modal": self.modal}


def _gate_irreps(block: nn.ModuleList) -> Any:
    """The output irreps (an e3nn ``Irreps``; e3nn is untyped) of a block's last gate."""
    return cast(Any, block[-1]).gate.irreps_out


class SevenNetBackbone(_ExactConstants, _Modal, Backbone):
    """SevenNet's embedding and interaction blocks (``weights="sevennet-0"``); ``modal`` picks
    the fidelity of a multi-fidelity weight set (``sevennet-mf-0``: ``PBE`` or ``R2SCAN``)."""

    table: torch.Tensor

    def __init__(self, *, weights: str = "sevennet-0", modal: str | None = None) -> None:
        super().__init__()
        self._set_modal(weights, modal)
        modules, config = _modules(weights)
        self.weights = weights
        self.cutoff = float(config["cutoff"])
        type_map = {int(z): int(i) for z, i in config["_type_map"].items()}
        self.n_species = len(type_map)
        self.elements = tuple(sorted(type_map))
        self.register_buffer(
            "table", element_table(type_map.keys(), type_map.values()), persistent=False
        )
        self.edge_embedding = modules["edge_embedding"]
        self.embedding = modules["onehot_to_feature_x"]
        n_blocks = 0
        while f"{n_blocks}_equivariant_gate" in modules:
            n_blocks += 1
        if n_blocks == 0:
            raise InputError(f"SevenNet weights {weights!r} have no interaction blocks")
        blocks = [
            nn.ModuleList(m for k, m in modules.items() if k.startswith(f"{b}_"))
            for b in range(n_blocks)
        ]
        self.blocks = nn.ModuleList(blocks)
        self.scalars = [_scalar_channels(_gate_irreps(blk)) for blk in blocks]
        last = _gate_irreps(blocks[-1])
        if len(self.scalars[-1]) != last.dim:
            raise InputError(f"SevenNet weights {weights!r}: last block is not scalar ({last})")
        self.feature_dim = last.dim
        self._record_constants()
        self.float()

    def forward(self, batch: AtomsBatch) -> BackboneOutput:
        species = species_of(batch, self.table, f"SevenNet ({self.weights})")
        pos = batch.positions
        i, j = batch.edge_index[0], batch.edge_index[1]
        vec = pos.index_select(0, j) - pos.index_select(0, i) + batch.shifts.to(pos.dtype)
        onehot = nn.functional.one_hot(species, self.n_species).to(pos.dtype)
        data: dict[str, torch.Tensor] = {
            "x": onehot, "node_attr": onehot, "atom_type": species, "edge_index": batch.edge_index,
            "edge_vec": vec, "batch": batch.batch, **self._modal_inputs(batch, pos.dtype),
        }  # fmt: skip
        data = self.edge_embedding(data)
        data = self.embedding(data)
        layers = [data["x"]]
        for block, scalars in zip(self.blocks, self.scalars, strict=True):
            for module in cast(nn.ModuleList, block):
                data = module(data)
            x = data["x"]
            layers.append(x if len(scalars) == x.shape[1] else x[:, scalars])
        return BackboneOutput(node=layers[-1], layers=layers)

    def parameter_blocks(self) -> list[tuple[str, list[nn.Parameter]]]:
        embedding = [*self.embedding.parameters(), *self.edge_embedding.parameters()]
        blocks = [("embedding", embedding)]
        blocks += [(f"layer{b + 1}", list(blk.parameters())) for b, blk in enumerate(self.blocks)]
        return blocks

    def model_args(self) -> dict:
        return {"type": "sevennet", "weights": self.weights, **self._modal_args()}

    def reinitialize(self, seed: int) -> None:
        """Random weights from ``seed`` (e3nn's standard normal), radial basis kept: scratch."""
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for module in (self.embedding, self.blocks):
                for p in module.parameters():
                    p.normal_()


class SevenNetEnergyHead(_ExactConstants, _Modal):
    """SevenNet's pretrained readout and per-element shift/scale (for ``sevennet-mf-0`` the
    readout's first map sees the modal one-hot and the shift is the modal's); (B,) eV."""

    table: torch.Tensor

    def __init__(
        self, feature_dim: int, *, weights: str = "sevennet-0", modal: str | None = None
    ) -> None:
        super().__init__()
        self._set_modal(weights, modal)
        modules, config = _modules(weights)
        self.weights = weights
        self.feature_dim = feature_dim
        self.readout = nn.ModuleList(modules[k] for k in _HEAD_MODULES)
        type_map = {int(z): int(i) for z, i in config["_type_map"].items()}
        self.register_buffer(
            "table", element_table(type_map.keys(), type_map.values()), persistent=False
        )
        self._record_constants()
        self.float()

    def head_args(self) -> dict:
        return {"type": "sevennet-energy", "feature_dim": self.feature_dim,
                "weights": self.weights, **self._modal_args()}  # fmt: skip

    def forward(self, features: BackboneOutput, batch: AtomsBatch) -> torch.Tensor:
        species = species_of(batch, self.table, f"SevenNet ({self.weights})")
        data = {"x": features.node, "atom_type": species,
                **self._modal_inputs(batch, features.node.dtype)}  # fmt: skip
        for module in self.readout:
            data = module(data)
        per_atom = data["atomic_energy"].squeeze(-1)
        return per_atom.new_zeros(batch.n_structures).index_add_(0, batch.batch, per_atom)


BACKBONES = {"sevennet": SevenNetBackbone}
HEADS = {"sevennet-energy": SevenNetEnergyHead}


def load(name: str) -> tuple[AtomisticModel, dict]:
    """A SevenNet weight set (``sevennet-0``, ``sevennet-l3i5``, ``sevennet-mf-0:MODAL``) with
    its energy head, and its meta (elements, source package, hash, model args). For a
    multi-fidelity set the hash covers the weights and the modal (both modals share weights)."""
    from atomcollapse.constants import SYMBOLS
    from atomcollapse.models.adapters import package_version, weights_hash

    weights, _, modal_text = name.partition(":")
    modal = resolve_modal(weights, modal_text or None)
    backbone = SevenNetBackbone(weights=weights, modal=modal)
    head = SevenNetEnergyHead(backbone.feature_dim, weights=weights, modal=modal)
    model = AtomisticModel(backbone, {"energy": head})
    digest = weights_hash(model)
    if modal is not None:
        digest = hashlib.sha256(f"{digest} modal {modal}".encode()).hexdigest()
    meta = {"kind": "pretrained", "name": weights if modal is None else f"{weights}:{modal}",
            "elements": [SYMBOLS[z] for z in backbone.elements],
            "source": f"sevenn {package_version('sevenn')}", "hash": digest,
            "model_args": {"backbone": backbone.model_args(), "heads": model.head_args()}}  # fmt: skip
    return model, meta
