"""PaiNN (Schütt, Unke & Gastegger, ICML 2021) in plain torch.

Scalar features ``s`` (N, F) and vector features ``v`` (3, N, F), stored component-major.
Each of the L layers is a message block (a filter from a sine radial basis times a cosine
cutoff, gating a per-atom context network) followed by an update block (mixing of vector
channels and a per-atom context network). ``BackboneOutput.vector`` is returned as (N, 3, F).

Speed on CPU, with the same arithmetic as the reference (schnetpack) formulation:

- a symmetric graph (both directions of every pair, as ``radius_graph`` gives) is folded to one
  entry per pair: distances, radial basis and filters are computed once per pair and shared by
  the two directed messages;
- the cutoff is folded into the filter's input (``[rbf * fcut, fcut] @ [W; b]`` equals
  ``(rbf @ W + b) * fcut``), so no per-edge multiply by the cutoff is needed;
- per-message tensors are part-major (part or component, message, F): every gather and sum
  moves whole contiguous 128-wide rows, and outer products with the direction broadcast cheaply;
- the first layer skips the vector-vector message (vector features start at zero);
- gathers use ``index_select`` and sums ``index_add_`` (no advanced-indexing backward).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from atomcollapse.constants import MAX_Z
from atomcollapse.data.batch import AtomsBatch
from atomcollapse.models.base import Backbone, BackboneOutput


def sine_basis(d: torch.Tensor, n_rbf: int, cutoff: float) -> torch.Tensor:
    """``sin(n pi d / cutoff) / d`` for n = 1..n_rbf; d (E,) Angstrom -> (E, n_rbf) 1/Angstrom."""
    n = torch.arange(1, n_rbf + 1, device=d.device, dtype=d.dtype)
    return torch.sin(d[:, None] * (n * (math.pi / cutoff))) / d[:, None]


def cosine_cutoff(d: torch.Tensor, cutoff: float) -> torch.Tensor:
    """``0.5 (cos(pi d / cutoff) + 1)`` inside the cutoff, 0 outside."""
    return 0.5 * (torch.cos(d * (math.pi / cutoff)) + 1.0) * (d < cutoff).to(d.dtype)


class _Pairs:
    """The graph as seen by the message blocks.

    Message ``m`` goes from ``senders[m]`` to ``receivers[m]`` along ``direction[:, m]`` (unit
    vector from receiver to sender, stored component-major (3, M)). ``senders3``/``receivers3``
    index the rows of component-major vector features flattened to (3 N, F). Per-pair quantities (basis, filters) have ``n_pairs`` rows
    and serve ``fold`` messages each: with ``fold == 2`` message ``m`` and ``m + n_pairs`` are the
    two directions of pair ``m``.
    """

    def __init__(self, batch: AtomsBatch) -> None:
        i, j = batch.edge_index[0], batch.edge_index[1]
        keep = _canonical(i, j, batch.shifts)
        n_keep = int(keep.sum())
        symmetric = 2 * n_keep == i.numel() and _same_pairs(i, j, keep)
        if symmetric:
            a, b, shifts = i[keep], j[keep], batch.shifts[keep]
            self.senders = torch.cat([b, a])
            self.receivers = torch.cat([a, b])
            self.fold = 2
        else:
            a, b, shifts = i, j, batch.shifts
            self.senders, self.receivers, self.fold = b, a, 1
        pos = batch.positions
        r = pos.index_select(0, b) - pos.index_select(0, a) + shifts.to(pos.dtype)
        self.distance = torch.linalg.vector_norm(r, dim=1)
        unit = r / self.distance[:, None]
        direction = torch.cat([unit, -unit]) if symmetric else unit
        self.direction = direction.t().contiguous()
        self.n_pairs = a.numel()
        self.n_messages = self.senders.numel()
        n = pos.shape[0]
        self.senders3 = torch.cat([self.senders, self.senders + n, self.senders + 2 * n])
        self.receivers3 = torch.cat([self.receivers, self.receivers + n, self.receivers + 2 * n])


def _canonical(i: torch.Tensor, j: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """One direction of each pair: i < j, or i == j with the shift's first non-zero entry > 0."""
    first = torch.where(
        shifts[:, 0] != 0, shifts[:, 0], torch.where(shifts[:, 1] != 0, shifts[:, 1], shifts[:, 2])
    )
    return (i < j) | ((i == j) & (first > 0))


def _same_pairs(i: torch.Tensor, j: torch.Tensor, keep: torch.Tensor) -> bool:
    """Cheap check that the dropped edges are the reverses of the kept ones (both are multisets)."""
    n = int(torch.maximum(i.max(), j.max())) + 1 if i.numel() else 1
    fwd = i[keep] * n + j[keep]
    rev = j[~keep] * n + i[~keep]
    return bool((fwd.sum() == rev.sum()) & ((fwd * fwd).sum() == (rev * rev).sum()))


def _scatter(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    out = values.new_zeros((n, *values.shape[1:]))
    return out.index_add_(0, index, values)


class PaiNNMessage(nn.Module):
    """Message block: the neighbours' context, gated by a radial filter, summed per atom."""

    def __init__(self, hidden: int, n_rbf: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.context = nn.Sequential(
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden)
        )
        self.filter = nn.Linear(n_rbf, 3 * hidden)

    def filters(self, basis: torch.Tensor, parts: int = 3) -> torch.Tensor:
        """Per-pair filters (parts, P, F) from the cutoff-folded basis (P, n_rbf + 1)."""
        rows = parts * self.hidden
        weight = torch.cat([self.filter.weight[:rows], self.filter.bias[:rows, None]], dim=1)
        return torch.matmul(basis, weight.view(parts, self.hidden, -1).transpose(1, 2))

    def forward(
        self, s: torch.Tensor, v: torch.Tensor | None, basis: torch.Tensor, pairs: _Pairs
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the scalar and vector updates and the context ``phi(s)`` (N, 3F).

        Per-message tensors are part-major (part, message, F) so that every gather and sum
        works on whole contiguous rows.
        """
        h, n = self.hidden, s.shape[0]
        parts = 3 if v is not None else 2
        phi = self.context(s)
        phi_parts = phi.view(n, 3, h)[:, :parts].transpose(0, 1).reshape(parts * n, h)
        w = self.filters(basis, parts)
        rows = pairs.senders3[: parts * pairs.n_messages]
        gathered = phi_parts.index_select(0, rows)
        if pairs.fold == 2 and pairs.distance.requires_grad:
            # under a force loss, double backward through a broadcast costs more than a copy
            msg = gathered.view(parts, -1, h) * torch.cat([w, w], dim=1)
        else:
            msg = (gathered.view(parts, pairs.fold, -1, h) * w[:, None]).view(parts, -1, h)
        pieces = msg.unbind(0)
        ds = _scatter(pieces[0], pairs.receivers, n)
        dv = pieces[1][None] * pairs.direction[:, :, None]
        if v is not None:
            v_j = v.view(3 * n, h).index_select(0, pairs.senders3).view(3, -1, h)
            dv = dv + pieces[2][None] * v_j
        dv = _scatter(dv.view(-1, h), pairs.receivers3, 3 * n).view(3, n, h)
        return ds, dv, phi


class PaiNNUpdate(nn.Module):
    """Update block: per-atom mixing of scalar and vector channels."""

    def __init__(self, hidden: int, epsilon: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.epsilon = epsilon
        self.mix = nn.Linear(hidden, 2 * hidden, bias=False)
        self.context = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden)
        )

    def forward(self, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_v, v_u = torch.split(self.mix(v), self.hidden, dim=-1)
        norm = torch.sqrt((v_v * v_v).sum(dim=0) + self.epsilon)
        a_ss, a_sv, a_vv = torch.split(
            self.context(torch.cat([s, norm], dim=-1)), self.hidden, dim=-1
        )
        s = s + a_ss + a_sv * (v_v * v_u).sum(dim=0)
        v = v + a_vv[None] * v_u
        return s, v


class PaiNN(Backbone):
    """Polarizable atom interaction neural network.

    ``hidden`` is the feature width F, ``layers`` the number of message + update layers,
    ``n_rbf`` the number of sine radial functions, ``cutoff`` the radius in Angstrom.
    ``shared_filters`` uses one filter network for all layers (its weights sit in ``layer1``).
    """

    def __init__(
        self,
        *,
        hidden: int = 128,
        layers: int = 3,
        n_rbf: int = 20,
        cutoff: float = 5.0,
        max_z: int = MAX_Z,
        shared_filters: bool = False,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__()
        if hidden < 1 or layers < 1 or n_rbf < 1 or not cutoff > 0 or max_z < 1:
            raise ValueError("hidden, layers, n_rbf, max_z must be >= 1 and cutoff > 0")
        self.feature_dim = hidden
        self.hidden = hidden
        self.n_layers = layers
        self.n_rbf = n_rbf
        self.cutoff = float(cutoff)
        self.max_z = max_z
        self.shared_filters = shared_filters
        self.epsilon = epsilon
        self.embedding = nn.Embedding(max_z + 1, hidden)
        self.messages = nn.ModuleList(PaiNNMessage(hidden, n_rbf) for _ in range(layers))
        self.updates = nn.ModuleList(PaiNNUpdate(hidden, epsilon) for _ in range(layers))
        if shared_filters:
            for m in self.messages[1:]:
                m.filter = self.messages[0].filter

    def forward(self, batch: AtomsBatch) -> BackboneOutput:
        pairs = _Pairs(batch)
        basis = self._basis(pairs.distance)
        s = self.embedding(batch.numbers)
        v: torch.Tensor | None = None
        layers = [s]
        for message, update in zip(self.messages, self.updates, strict=True):
            ds, dv, phi = message(s, v, basis, pairs)
            s = s + ds
            v = dv if v is None else v + dv
            s, v = update(s, v)
            layers.append(s)
        assert v is not None
        edge = None if self.training else self._edge_features(batch, phi)
        return BackboneOutput(node=s, layers=layers, edge=edge, vector=v.permute(1, 0, 2))

    def _edge_features(self, batch: AtomsBatch, phi: torch.Tensor) -> torch.Tensor:
        """Last layer's scalar message ``W(r_ij) * phi(s_j)`` (E, F) in ``edge_index`` order."""
        i, j = batch.edge_index[0], batch.edge_index[1]
        pos = batch.positions
        r = pos.index_select(0, j) - pos.index_select(0, i) + batch.shifts.to(pos.dtype)
        d = torch.linalg.vector_norm(r, dim=1)
        last: PaiNNMessage = self.messages[-1]  # type: ignore[assignment]
        w = last.filters(self._basis(d), parts=1)[0]
        return w * phi[:, : self.hidden].index_select(0, j)

    def _basis(self, d: torch.Tensor) -> torch.Tensor:
        """Cutoff-folded radial basis ``[rbf * fcut, fcut]`` (P, n_rbf + 1)."""
        fcut = cosine_cutoff(d, self.cutoff)
        return torch.cat([sine_basis(d, self.n_rbf, self.cutoff) * fcut[:, None], fcut[:, None]], 1)

    def parameter_blocks(self) -> list[tuple[str, list[nn.Parameter]]]:
        blocks: list[tuple[str, list[nn.Parameter]]] = [
            ("embedding", [*self.embedding.parameters()])
        ]
        seen: set[int] = {id(self.embedding.weight)}
        for k, (m, u) in enumerate(zip(self.messages, self.updates, strict=True), start=1):
            params = [p for p in (*m.parameters(), *u.parameters()) if id(p) not in seen]
            seen.update(id(p) for p in params)
            blocks.append((f"layer{k}", params))
        return blocks

    def model_args(self) -> dict:
        return {
            "type": "painn",
            "hidden": self.hidden,
            "layers": self.n_layers,
            "n_rbf": self.n_rbf,
            "cutoff": self.cutoff,
            "max_z": self.max_z,
            "shared_filters": self.shared_filters,
            "epsilon": self.epsilon,
        }
