"""The model registry: every ``--pretrained`` name and every checkpoint backbone/head type.

One table (:data:`ENTRIES`) maps a name pattern to the module that builds the model, with what
the model is: its element set, the pip extra that installs it, the package its weights ship in,
and what this project takes as its backbone and its energy head (the head that MFT keeps
training). A module is imported only when one of its models is built; nothing registers itself
by import side effect. An adapter module exports ``load(name) -> (model, meta)`` and the
``BACKBONES`` / ``HEADS`` constructors by ``model_args()["type"]`` / ``head_args()["type"]``, so
that checkpoints of fine-tuned adapted models rebuild. Adding an adapter is one module and one
entry here.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atomcollapse.errors import InputError


@dataclass(frozen=True)
class ModelEntry:
    """A family of pretrained models that ``--pretrained`` names."""

    name: str  # listing name
    pattern: str  # full-match regex of the names it takes (lower case)
    module: str  # the adapter module (``load``, ``BACKBONES``, ``HEADS``)
    backbone_types: tuple[str, ...]
    head_types: tuple[str, ...]
    elements: str
    extra: str | None
    package: str | None  # the import name its code and weights come from
    backbone: str  # what the backbone is
    energy_head: str  # what the energy head (MFT's force-field head) is
    names: tuple[str, ...] = ()  # the names a listing shows (every weight set)
    hint: str = ""  # what its variants are: said when a name of the family is not one of them
    install: str = ""  # how to install it, when not just the extra (a separate environment)
    keeps_case: bool = False  # its names carry a file path: passed on as typed, not lower-cased
    weights: str = "in the wheel"  # where its weights come from

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.pattern, name.strip().lower()) is not None

    def installed(self) -> bool:
        return self.package is None or importlib.util.find_spec(self.package) is not None

    def install_hint(self) -> str:
        if self.install:
            return self.install
        return f"pip install 'atomcollapse[{self.extra}]'" if self.extra else ""


_ANI_BACKBONE = "AEV featuriser and the element networks' hidden layers (ensemble: concatenated)"
ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="ani1x", pattern=r"ani1x(:[0-7])?", module="atomcollapse.models.adapters.ani",
        backbone_types=("ani",), head_types=("ani-energy",), elements="H, C, N, O (molecules)",
        extra="ani", package="torchani", backbone=_ANI_BACKBONE,
        energy_head="the members' last linear layers (averaged) + self-atomic energies",
        names=("ani1x", "ani1x:0", "ani1x:1", "ani1x:2", "ani1x:3", "ani1x:4", "ani1x:5",
               "ani1x:6", "ani1x:7"),
        hint="ani1x:K is ensemble member K, model_index 0..7",
    ),
    ModelEntry(
        name="ani1ccx", pattern=r"ani1ccx(:[0-7])?", module="atomcollapse.models.adapters.ani",
        backbone_types=("ani",), head_types=("ani-energy",), elements="H, C, N, O (molecules)",
        extra="ani", package="torchani", backbone=_ANI_BACKBONE,
        energy_head="the members' last linear layers (averaged) + self-atomic energies",
        names=("ani1ccx",),
        hint="the 8-member ensemble only",
    ),
    ModelEntry(
        name="sevennet", pattern=r"sevennet-(0|l3i5)", module="atomcollapse.models.adapters.sevenn",
        backbone_types=("sevennet",), head_types=("sevennet-energy",),
        elements="89 elements (MPtrj), periodic or not", extra="sevenn", package="sevenn",
        backbone="embedding and interaction blocks (scalar channels per block as features)",
        energy_head="readout (two linear maps) + per-element scale and shift",
        names=("sevennet-0", "sevennet-l3i5"),
        hint="each weight set is a single model",
    ),
    ModelEntry(
        # every modal (or none) reaches the adapter, which lists the checkpoint's own modals
        name="sevennet-mf", pattern=r"sevennet-mf-0(:[^:]*)?",
        module="atomcollapse.models.adapters.sevenn", backbone_types=("sevennet",),
        head_types=("sevennet-energy",),
        elements="89 elements (PBE and r2SCAN fidelities), periodic or not", extra="sevenn",
        package="sevenn",
        backbone="embedding and 5 interaction blocks; the modal's one-hot is an extra input of "
        "every block's two self-interaction linear maps (scalar channels per block as features)",
        energy_head="readout: first linear map (weights shared, the modal's one-hot an extra "
        "input) and second linear map (shared), trained; per-element scale (shared) and the "
        "modal's per-element shift stay fixed",
        names=("sevennet-mf-0:PBE", "sevennet-mf-0:R2SCAN"),
        hint="sevennet-mf-0:MODAL picks a fidelity, MODAL one of PBE, R2SCAN",
    ),
    ModelEntry(
        name="chgnet", pattern=r"chgnet(:(0\.3\.0|0\.2\.0|r2scan))?",
        module="atomcollapse.models.adapters.chgnet", backbone_types=("chgnet",),
        head_types=("chgnet-energy",), elements="94 elements (Z 1-94, H-Pu), periodic or not",
        extra="chgnet", package="chgnet",
        backbone="atom/bond/angle embeddings and 4 interaction blocks (64 atom features each)",
        energy_head="readout LayerNorm (not in 0.2.0) + per-atom MLP; the per-element AtomRef "
        "stays fixed (MP2020-corrected MPtrj energies for 0.3.0/0.2.0)",
        names=("chgnet", "chgnet:0.3.0", "chgnet:0.2.0", "chgnet:r2scan"),
        hint="chgnet:VERSION, default 0.3.0",
    ),
    ModelEntry(
        name="so3lr", pattern=r"so3lr", module="atomcollapse.models.adapters.so3lr",
        backbone_types=("so3lr",), head_types=("so3lr-energy",),
        elements="H, C, N, O, F, P, S, Cl (molecules; periodic too)", extra="so3lr",
        package="so3krates_torch",
        backbone="embeddings and the 3 Euclidean-transformer layers (invariant features)",
        energy_head="atomic-energy MLP + ZBL + partial-charge electrostatics + Hirshfeld "
        "dispersion (12 A); charges and ratios are read from the last features",
        names=("so3lr",),
        hint="a single model",
    ),
    ModelEntry(
        name="deepmd", pattern=r"deepmd:.+", module="atomcollapse.models.adapters.deepmd",
        backbone_types=("deepmd",), head_types=("deepmd-energy",),
        elements="the element symbols of the checkpoint's type map", extra="deepmd",
        package="deepmd",
        backbone="DeePMD descriptor (DPA-3: type/edge/angle embeddings, repflow layers)",
        energy_head="the branch's energy fitting net; DeePMD's per-type energy bias and the "
        "branch's case embedding stay fixed",
        names=("deepmd:DPA-3.1-3M",),
        hint="deepmd:PATH.pt[:BRANCH], or a DeePMD published name such as deepmd:DPA-3.1-3M:BRANCH",
        keeps_case=True, weights="your checkpoint, or DeePMD's cache",
        install="make deepmd (deepmd-kit==3.2.0 built against the installed torch; extra 'deepmd')",
    ),
    ModelEntry(
        name="mace", pattern=r"mace:.+|mace-[a-z0-9.-]+(:[^:/]+)?",
        module="atomcollapse.models.adapters.mace", backbone_types=("mace",),
        head_types=("mace-energy",), elements="the model's own (its z table)", extra="mace",
        package="mace", install="make setup-mace",
        backbone="node embedding and the interaction/product layers (scalar channels of each "
        "layer as features)",
        energy_head="MACE's readouts (summed over layers) + ZBL if any; scale/shift and E0s "
        "fixed (buffers)",
        names=("mace:PATH.model", "mace-mp-0", "mace-mp-0-small", "mace-mp-0-medium",
               "mace-mp-0-large", "mace-mp-0b3-medium", "mace-mpa-0-medium",
               "mace-omat-0-small", "mace-omat-0-medium", "mace-off-small", "mace-off-medium",
               "mace-off-large"),
        hint="mace:PATH.model[:HEAD] for a file, or a foundation name (MACE's own download "
        "and cache)",
        keeps_case=True, weights="your file, or MACE's cache",
    ),
)  # fmt: skip


def entry_for(name: str) -> ModelEntry | None:
    """The entry whose pattern takes ``name``, else None."""
    for entry in ENTRIES:
        if entry.matches(str(name)):
            return entry
    return None


def family_for(name: str) -> ModelEntry | None:
    """The entry with a name of the same family as ``name`` (the part before ``:``), else None:
    ``chgnet:9.9`` is a CHGNet name with an unknown version, not a checkpoint path."""
    base = str(name).strip().lower().partition(":")[0]
    for entry in ENTRIES:
        if any(n.partition(":")[0] == base for n in entry.names or (entry.name,)):
            return entry
    return None


def _module(entry: ModelEntry) -> Any:
    if not entry.installed():
        how = entry.install_hint()
        if entry.install:  # not a plain pip extra: say which extra and why
            how += (f" (the {entry.extra!r} extra, in its own environment .venv-{entry.extra}: "
                    f"see the README)")  # fmt: skip
        raise InputError(f"--pretrained {entry.name} needs the package {entry.package!r}: {how}")
    return importlib.import_module(entry.module)


def load_named(name: str) -> tuple[Any, dict[str, Any]]:
    """``(model, meta)`` of a registered pretrained name; InputError for an unknown one."""
    entry = entry_for(name)
    if entry is None:
        family = family_for(name)
        if family is not None:
            raise InputError(
                f"unknown {family.name} weights {name!r} ({family.hint}); known: "
                f"{', '.join(family.names or (family.name,))}"
            )
        raise InputError(f"unknown pretrained model {name!r}; known: {', '.join(known_names())}")
    return _module(entry).load(name.strip() if entry.keeps_case else name.strip().lower())


def known_names() -> list[str]:
    return [n for e in ENTRIES for n in (e.names or (e.name,))]


def _by_type(kind: str, attr: str) -> Callable[..., Any] | None:
    for entry in ENTRIES:
        if kind in getattr(entry, f"{attr}_types"):
            return getattr(_module(entry), attr.upper() + "S")[kind]
    return None


def backbone_factory(kind: str) -> Callable[..., Any] | None:
    """The constructor of a checkpoint's backbone type (``model_args()["type"]``), or None."""
    if kind == "painn":
        from atomcollapse.models.painn import PaiNN

        return PaiNN
    return _by_type(kind, "backbone")


def head_factory(kind: str) -> Callable[..., Any] | None:
    """The constructor of an adapter's head type (``head_args()["type"]``), or None."""
    return _by_type(kind, "head")


def backbone_types() -> list[str]:
    """Every backbone type a checkpoint may name, once each (families may share a type)."""
    return list(dict.fromkeys(["painn", *(t for e in ENTRIES for t in e.backbone_types)]))


def describe(name: str, *, count_params: bool = True) -> dict[str, Any]:
    """One registered name as ``atomcollapse models`` lists it: the family's facts, whether its
    package (code and weights) is installed here, and its parameter count (building it)."""
    entry = entry_for(name)
    if entry is None:
        raise InputError(f"unknown pretrained model {name!r}; known: {', '.join(known_names())}")
    row: dict[str, Any] = {
        "name": name, "family": entry.name, "elements": entry.elements, "extra": entry.extra,
        "installed": entry.installed(), "install": entry.install_hint(), "parameters": None,
        "backbone": entry.backbone, "energy_head": entry.energy_head, "weights_present": None,
    }  # fmt: skip
    row["weights"] = entry.weights
    present = getattr(_module(entry), "weights_present", None) if row["installed"] else None
    if present is not None:
        row["weights_present"] = present(name)
        if row["weights_present"] is not None:
            here = "here" if row["weights_present"] else "not here"
            row["weights"] = f"{here}: {entry.weights}"
    elif row["installed"]:
        row["weights_present"] = True
    if count_params and row["installed"] and row["weights_present"]:
        model, _ = load_named(name)
        row["parameters"] = sum(p.numel() for p in model.parameters())
    return row
