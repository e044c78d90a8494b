"""CHGNet (``chgnet==0.4.2``, weights inside the wheel) behind the backbone interface.

CHGNet is a graph network over two graphs: the atom graph (every pair closer than
``atom_graph_cutoff``: 6 A for weights ``0.3.0`` and ``r2scan``, 5 A for ``0.2.0``) whose edges
are undirected bonds carrying features, and the bond graph (every pair of bonds shorter than
``bond_graph_cutoff`` = 3 A that share an atom) whose edges are angles. Its 4 interaction blocks
update atoms (atom conv), then bonds from angles (bond conv), then angles; the last block has
the atom conv only. The adapter takes the pretrained modules out of chgnet's ``CHGNet`` and runs
them on our batch:

- graphs: built here from the batch's ``edge_index``/``shifts`` (the radius graph at ``cutoff`` =
  the atom-graph cutoff): each directed edge is paired with its reverse (``j -> i``, opposite
  periodic image) into one undirected bond; the angles are all ordered pairs of distinct
  directed edges shorter than 3 A leaving the same atom. Bond lengths and angle cosines are
  computed from the positions here, so forces are -dE/dR by autograd through the positions
  (chgnet differentiates the fractional-to-Cartesian coordinates: the same numbers).
- features: ``layers = [atom embedding, block1 .. block4]`` (64 per atom each); ``node`` = the
  last block's atom features. The last block's angle update, whose output CHGNet never reads,
  is not run (its weights stay in the state dict and get no gradient).
- :class:`ChgnetEnergyHead` is CHGNet's readout: the layer norm before the readout (``0.3.0``,
  ``r2scan``; none in ``0.2.0``), the per-atom MLP, and the fixed per-element AtomRef energies
  (CHGNet's composition model, frozen in CHGNet's training too), summed per structure: eV,
  i.e. CHGNet's energy per atom times the number of atoms, as ``CHGNetCalculator`` returns.
- not taken: the site-wise magnetic-moment head (a linear map on block 3's atom features, not
  part of the energy; block 3's features are ``layers[3]``) and stress.
- energies are what CHGNet predicts: ``0.3.0``/``0.2.0`` were trained on MPtrj GGA/GGA+U
  energies with pymatgen's MaterialsProject2020Compatibility corrections already applied, so
  their energies are MP2020-corrected energies; ``r2scan`` was fine-tuned on MP r2SCAN energies.
  The adapter adds and removes no correction: fine-tune on labels of the same kind.
- parameter blocks: ``embedding`` (atom embedding, radial and angular bases, bond/angle
  embeddings and bond weights), ``layer1..layer4`` (block k's atom conv, bond conv and angle
  update).
- elements: atomic numbers 1..94 (H to Pu), CHGNet's embedding table.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import math
import warnings
from typing import Any, cast

import torch
from torch import nn

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.errors import InputError
from atomcollapse.models.adapters.elements import element_table, species_of
from atomcollapse.models.base import Backbone, BackboneOutput
from atomcollapse.models.model import AtomisticModel

WEIGHTS = ("0.3.0", "0.2.0", "r2scan")
DEFAULT_WEIGHTS = "0.3.0"
ELEMENTS = tuple(range(1, 95))
INSTALL = "pip install 'atomcollapse[chgnet]' (chgnet==0.4.2)"


@functools.lru_cache(maxsize=len(WEIGHTS))
def _pretrained(weights: str) -> nn.Module:
    """chgnet's pretrained ``CHGNet`` for ``weights`` (CPU, float32); loaded once per process.

    ``CHGNet.load`` resolves the weights inside the installed package, never the current folder.
    """
    if weights not in WEIGHTS:
        raise InputError(f"unknown CHGNet version {weights!r}; known: {', '.join(WEIGHTS)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from chgnet.model import CHGNet
    except ImportError as e:
        raise InputError(f"the CHGNet adapter needs chgnet ({e}); {INSTALL}") from None
    with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints a line per model built
        model = CHGNet.load(model_name=weights, use_device="cpu", verbose=False)
    args = model.model_args
    unsupported = {
        "mlp_first": True, "is_intensive": True, "update_bond": True, "update_angle": True,
    }  # fmt: skip
    wrong = [k for k, v in unsupported.items() if args.get(k, v) != v]
    if wrong or model.composition_model is None:
        raise InputError(f"CHGNet {weights}: unsupported architecture ({', '.join(wrong)})")
    return model.float().eval()


def _copy(weights: str) -> Any:
    """A private copy of the pretrained model (typed ``Any``: its modules are read by name)."""
    return copy.deepcopy(_pretrained(weights))


class _Graph:
    """CHGNet's atom and bond graphs of one batch (indices only; no gradient)."""

    def __init__(self, batch: AtomsBatch, cutoff: float, bond_cutoff: float) -> None:
        pos = batch.positions
        edge_index, shifts = batch.edge_index, batch.shifts.to(pos.dtype)
        with torch.no_grad():
            length = (pos[edge_index[1]] - pos[edge_index[0]] + shifts).norm(dim=1)
            inside = length < cutoff
            if not bool(inside.all()):  # a graph built for a larger cutoff
                edge_index, shifts, length = edge_index[:, inside], shifts[inside], length[inside]
        self.edge_index, self.shifts = edge_index, shifts
        self.atom_graph = edge_index.t().contiguous()  # (D, 2) [centre, neighbour]
        n_edges = edge_index.shape[1]
        reverse = _reverse_edges(batch, edge_index, shifts)
        arange = torch.arange(n_edges, device=pos.device)
        self.bond_edge = torch.nonzero(arange < reverse).flatten()  # one directed edge per bond
        n_bonds = self.bond_edge.numel()
        self.directed2undirected = torch.empty_like(arange)
        bond_ids = torch.arange(n_bonds, device=pos.device)
        self.directed2undirected[self.bond_edge] = bond_ids
        self.directed2undirected[reverse[self.bond_edge]] = bond_ids
        short = torch.nonzero(length < bond_cutoff).flatten()
        self.angle_left, self.angle_right = _angle_pairs(
            edge_index[0], short, batch.numbers.numel()
        )
        centre = edge_index[0, self.angle_left]
        self.bond_graph = torch.stack(
            [centre, self.directed2undirected[self.angle_left],
             self.directed2undirected[self.angle_right]], dim=1,
        )  # fmt: skip
        # a structure without angles skips its bond convolutions, as CHGNet run on it alone does
        has_angles = torch.zeros(batch.n_structures, dtype=torch.bool, device=pos.device)
        has_angles[batch.batch[centre]] = True
        self.bond_active = has_angles[batch.batch[edge_index[0, self.bond_edge]]]
        self.n_bonds = n_bonds

    def vectors(self, positions: torch.Tensor) -> torch.Tensor:
        """Directed edge vectors ``r_j - r_i + shift`` (differentiable in ``positions``)."""
        i, j = self.edge_index[0], self.edge_index[1]
        return positions.index_select(0, j) - positions.index_select(0, i) + self.shifts


def _reverse_edges(
    batch: AtomsBatch, edge_index: torch.Tensor, shifts: torch.Tensor
) -> torch.Tensor:
    """For each directed edge ``(i, j, image n)`` the index of ``(j, i, -n)``."""
    n_edges = edge_index.shape[1]
    device = edge_index.device
    if batch.cell is None or n_edges == 0:
        image = torch.zeros((n_edges, 3), dtype=torch.long, device=device)
    else:
        inverse = torch.linalg.pinv(batch.cell.to(torch.float64))  # zero rows: non-periodic
        owner = batch.batch[edge_index[0]]
        frac = torch.einsum("ek,ekl->el", shifts.to(torch.float64), inverse[owner])
        image = torch.round(frac).to(torch.long)
    forward = torch.cat([edge_index.t(), image], dim=1)
    backward = torch.cat([edge_index.flip(0).t(), -image], dim=1)
    _, key = torch.unique(torch.cat([forward, backward]), dim=0, return_inverse=True)
    slot = torch.full((2 * n_edges,), -1, dtype=torch.long, device=device)
    slot[key[:n_edges]] = torch.arange(n_edges, device=device)
    reverse = slot[key[n_edges:]]
    if bool((reverse < 0).any()):
        raise InputError("CHGNet needs a symmetric neighbour list (an edge has no reverse)")
    return reverse


def _angle_pairs(
    centres: torch.Tensor, short: torch.Tensor, n_atoms: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """All ordered pairs ``(d, d2)``, ``d != d2``, of the ``short`` directed edges that leave the
    same atom (``centres[d] == centres[d2]``), as two index tensors into the edges."""
    order = torch.argsort(centres[short], stable=True)
    short = short[order]
    centre = centres[short]
    degree = torch.bincount(centre, minlength=n_atoms)
    start = torch.cumsum(degree, 0) - degree
    repeats = degree[centre]
    left = torch.repeat_interleave(torch.arange(short.numel(), device=short.device), repeats)
    first = torch.cumsum(repeats, 0) - repeats
    within = torch.arange(left.numel(), device=short.device) - first[left]
    right = start[centre[left]] + within
    keep = left != right
    return short[left[keep]], short[right[keep]]


class ChgnetBackbone(Backbone):
    """CHGNet's embeddings and interaction blocks (``weights``: ``0.3.0``, ``0.2.0``,
    ``r2scan``)."""

    table: torch.Tensor

    def __init__(self, *, weights: str = DEFAULT_WEIGHTS) -> None:
        super().__init__()
        model = _copy(weights)
        self.weights = weights
        self.cutoff = float(model.model_args["atom_graph_cutoff"])
        self.bond_cutoff = float(model.model_args["bond_graph_cutoff"])
        self.feature_dim = int(model.atom_fea_dim)
        self.elements = ELEMENTS
        self.atom_embedding = model.atom_embedding
        self.bond_basis = model.bond_basis_expansion
        self.bond_embedding = model.bond_embedding
        self.bond_weights_ag = model.bond_weights_ag
        self.bond_weights_bg = model.bond_weights_bg
        self.angle_basis = model.angle_basis_expansion
        self.angle_embedding = model.angle_embedding
        self.atom_convs = model.atom_conv_layers
        self.bond_convs = model.bond_conv_layers
        self.angle_updates = model.angle_layers
        self.register_buffer(
            "table", element_table(ELEMENTS, range(len(ELEMENTS))), persistent=False
        )

    def forward(self, batch: AtomsBatch) -> BackboneOutput:
        species = species_of(batch, self.table, f"CHGNet ({self.weights})")
        graph = _Graph(batch, self.cutoff, self.bond_cutoff)
        vec = graph.vectors(batch.positions)
        length = vec.norm(dim=1)
        bond_length = length.index_select(0, graph.bond_edge)
        rbf_ag = self.bond_basis.rbf_expansion_ag(bond_length)
        rbf_bg = self.bond_basis.rbf_expansion_bg(bond_length)
        unit = vec / length.unsqueeze(1)
        angle_basis = self.angle_basis(
            unit.index_select(0, graph.angle_left), unit.index_select(0, graph.angle_right)
        )
        atoms = self.atom_embedding(species)
        bonds = self.bond_embedding(rbf_ag)
        weights_ag = self.bond_weights_ag(rbf_ag)
        weights_bg = self.bond_weights_bg(rbf_bg)
        angles = self.angle_embedding(angle_basis)
        with_angles = graph.bond_graph.shape[0] > 0
        layers = [atoms]
        n_blocks = len(self.atom_convs)
        for k, atom_conv in enumerate(self.atom_convs):
            atoms = atom_conv(
                atom_feas=atoms, bond_feas=bonds, bond_weights=weights_ag,
                atom_graph=graph.atom_graph, directed2undirected=graph.directed2undirected,
            )  # fmt: skip
            layers.append(atoms)
            if k == n_blocks - 1 or not with_angles:
                continue
            updated = self.bond_convs[k](
                atom_feas=atoms, bond_feas=bonds, bond_weights=weights_bg, angle_feas=angles,
                bond_graph=graph.bond_graph,
            )  # fmt: skip
            bonds = torch.where(graph.bond_active.unsqueeze(1), updated, bonds)
            if k < n_blocks - 2:  # the last angle update's output is never read
                angles = self.angle_updates[k](
                    atom_feas=atoms, bond_feas=bonds, angle_feas=angles,
                    bond_graph=graph.bond_graph,
                )  # fmt: skip
        return BackboneOutput(node=atoms, layers=layers)

    def _blocks(self) -> list[list[nn.Module]]:
        n = len(self.atom_convs)
        return [
            [
                self.atom_convs[k],
                *((self.bond_convs[k], self.angle_updates[k]) if k < n - 1 else ()),
            ]
            for k in range(n)
        ]

    def _embedding_modules(self) -> list[nn.Module]:
        return [self.atom_embedding, self.bond_basis, self.bond_embedding, self.bond_weights_ag,
                self.bond_weights_bg, self.angle_basis, self.angle_embedding]  # fmt: skip

    def parameter_blocks(self) -> list[tuple[str, list[nn.Parameter]]]:
        blocks = [("embedding", [p for m in self._embedding_modules() for p in m.parameters()])]
        for k, modules in enumerate(self._blocks()):
            blocks.append((f"layer{k + 1}", [p for m in modules for p in m.parameters()]))
        return blocks

    def model_args(self) -> dict:
        return {"type": "chgnet", "weights": self.weights}

    def reinitialize(self, seed: int) -> None:
        """Random weights from ``seed`` as a fresh ``CHGNet`` draws them (torch's defaults for
        linear, embedding and norm layers), basis frequencies back at their canonical values:
        the scratch arm."""
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for module in self.modules():
                if module is not self and hasattr(module, "reset_parameters"):
                    cast(Any, module).reset_parameters()
            for rbf in (self.bond_basis.rbf_expansion_ag, self.bond_basis.rbf_expansion_bg):
                freq = rbf.frequencies
                freq.copy_(math.pi * torch.arange(1, freq.numel() + 1, dtype=freq.dtype))
            freq = self.angle_basis.fourier_expansion.frequencies
            freq.copy_(torch.arange(1, freq.numel() + 1, dtype=freq.dtype))


class ChgnetEnergyHead(nn.Module):
    """CHGNet's readout (norm, per-atom MLP) plus its fixed AtomRef energies; (B,) eV."""

    table: torch.Tensor
    atom_ref: torch.Tensor

    def __init__(self, feature_dim: int, *, weights: str = DEFAULT_WEIGHTS) -> None:
        super().__init__()
        model = _copy(weights)
        if int(model.atom_fea_dim) != feature_dim:
            raise ValueError(
                f"CHGNet {weights} head width is {model.atom_fea_dim}, not {feature_dim}"
            )
        self.weights = weights
        self.feature_dim = feature_dim
        self.norm = model.readout_norm if model.readout_norm is not None else nn.Identity()
        self.mlp = model.mlp
        # AtomRef: eV per atom of each element (index Z - 1); a constant, as CHGNet trains it
        ref = model.composition_model.fc.weight.detach().reshape(-1).clone()
        self.register_buffer("atom_ref", ref)
        self.register_buffer(
            "table", element_table(ELEMENTS, range(len(ELEMENTS))), persistent=False
        )

    def head_args(self) -> dict:
        return {"type": "chgnet-energy", "feature_dim": self.feature_dim, "weights": self.weights}

    def forward(self, features: BackboneOutput, batch: AtomsBatch) -> torch.Tensor:
        species = species_of(batch, self.table, f"CHGNet ({self.weights})")
        per_atom = self.mlp(self.norm(features.node)).squeeze(-1)
        per_atom = per_atom + self.atom_ref.index_select(0, species)
        return per_atom.new_zeros(batch.n_structures).index_add_(0, batch.batch, per_atom)


BACKBONES = {"chgnet": ChgnetBackbone}
HEADS = {"chgnet-energy": ChgnetEnergyHead}


def weights_of(name: str) -> str:
    """The CHGNet version a ``--pretrained`` name asks for (``chgnet`` -> ``0.3.0``)."""
    _, _, version = name.strip().lower().partition(":")
    version = version or DEFAULT_WEIGHTS
    if version not in WEIGHTS:
        raise InputError(
            f"unknown CHGNet version {version!r} in --pretrained {name}; known: "
            f"{', '.join(WEIGHTS)}"
        )
    return version


def load(name: str) -> tuple[AtomisticModel, dict]:
    """``chgnet`` (= ``chgnet:0.3.0``), ``chgnet:0.2.0`` or ``chgnet:r2scan`` with its energy
    head, and its meta (elements, source package, weights hash, model args)."""
    from atomcollapse.constants import SYMBOLS
    from atomcollapse.models.adapters import package_version, weights_hash

    weights = weights_of(name)
    backbone = ChgnetBackbone(weights=weights)
    head = ChgnetEnergyHead(backbone.feature_dim, weights=weights)
    model = AtomisticModel(backbone, {"energy": head})
    meta = {"kind": "pretrained", "name": name, "elements": [SYMBOLS[z] for z in ELEMENTS],
            "source": f"chgnet {package_version('chgnet')} (weights {weights})",
            "hash": weights_hash(model),
            "model_args": {"backbone": backbone.model_args(), "heads": model.head_args()}}  # fmt: skip
    return model, meta
