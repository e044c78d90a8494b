"""Neighbour lists for batches of molecules and periodic structures, in torch.

Two paths, both vectorised over the whole batch (no Python loop over atoms or structures):

- small molecules (no periodic direction, at most ``DENSE_MAX_ATOMS`` atoms): every ordered pair of
  every structure is enumerated with ``repeat_interleave`` and filtered by distance;
- everything else (periodic structures, large molecules): a cell list. Atoms are wrapped into the
  cell along periodic directions, the periodic images that can reach the cell are generated, all
  points are binned on a grid of cubes half the cutoff wide, and each atom is compared with the
  points of the 5 x 5 x 5 cubes around it.

Work is done in chunks of structures (and of atoms within a structure) so memory stays bounded.
The edge filter is evaluated on exactly the vector a model computes,
``positions[j] - positions[i] + shifts[e]``, so the returned graph never holds an edge that the
model would see at a distance of ``cutoff`` or more.
"""

from __future__ import annotations

import math

import torch

from atomcollapse.errors import InputError

DENSE_MAX_ATOMS = 512
_PAIR_BUDGET = 1 << 20
_BIN_SPLIT = 2
_MAX_BINS = 1024
_EYE_AXES = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def radius_graph(
    positions: torch.Tensor,
    offsets: torch.Tensor,
    cutoff: float,
    cell: torch.Tensor | None = None,
    pbc: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs closer than ``cutoff`` (Angstrom, strict) in a batch of structures.

    ``positions`` (N, 3) Angstrom holds all structures concatenated; ``offsets`` (B + 1,) int64
    marks where each starts (``offsets[0] == 0``, ``offsets[-1] == N``). ``cell`` (B, 3, 3) has
    lattice vectors as rows; ``pbc`` (B, 3) bool marks periodic directions (None: none are).

    Returns ``edge_index`` (2, E) int64 ``[i, j]`` of global atom indices and ``shifts`` (E, 3)
    Cartesian Angstrom, such that the edge vector is ``positions[j] - positions[i] + shifts[e]``.
    Both directions of every pair are listed; an atom's own periodic images are neighbours.
    Edges are sorted by i, then j, then the integer image (lexicographic). Output lives on the
    device of ``positions``, shifts in its dtype; no gradient flows through it.
    """
    pos, offsets, cutoff, cell, pbc = _validate(positions, offsets, cutoff, cell, pbc)
    device = pos.device
    with torch.no_grad():
        counts = offsets[1:] - offsets[:-1]
        periodic = pbc.any(dim=1)
        dense = ~periodic & (counts <= DENSE_MAX_ATOMS)
        dense_idx = torch.nonzero(dense).flatten()
        other_idx = torch.nonzero(~dense).flatten()
        parts = []
        if dense_idx.numel():
            parts.append(_dense_pairs(pos, offsets, dense_idx, cutoff))
        if other_idx.numel():
            parts.append(_cell_list_pairs(pos, offsets, other_idx, cutoff, cell, pbc))
        if not parts:
            return (
                torch.zeros((2, 0), dtype=torch.long, device=device),
                torch.zeros((0, 3), dtype=pos.dtype, device=device),
            )
        edge_index = torch.cat([p[0] for p in parts], dim=1)
        shifts = torch.cat([p[1] for p in parts], dim=0)
        if len(parts) > 1:
            order = torch.sort(edge_index[0], stable=True).indices
            edge_index, shifts = edge_index[:, order], shifts[order]
    return edge_index, shifts


def _validate(
    positions: torch.Tensor,
    offsets: torch.Tensor,
    cutoff: float,
    cell: torch.Tensor | None,
    pbc: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor, torch.Tensor]:
    if not isinstance(positions, torch.Tensor) or positions.ndim != 2 or positions.shape[1] != 3:
        raise InputError(f"positions must be a (N, 3) tensor, got {_shape_of(positions)}")
    if positions.dtype not in (torch.float32, torch.float64):
        raise InputError(f"positions must be float32 or float64, got {positions.dtype}")
    pos = positions.detach()
    device, n_atoms = pos.device, pos.shape[0]
    if not isinstance(offsets, torch.Tensor) or offsets.ndim != 1 or offsets.numel() < 1:
        raise InputError(f"offsets must be a (B + 1,) tensor, got {_shape_of(offsets)}")
    if offsets.dtype.is_floating_point or offsets.dtype == torch.bool:
        raise InputError(f"offsets must be integers, got {offsets.dtype}")
    offsets = offsets.to(device=device, dtype=torch.long)
    n_struct = offsets.numel() - 1
    if int(offsets[0]) != 0 or int(offsets[-1]) != n_atoms:
        raise InputError(f"offsets must run from 0 to the number of atoms ({n_atoms})")
    if n_struct and bool((offsets[1:] < offsets[:-1]).any()):
        raise InputError("offsets must be non-decreasing")
    try:
        cutoff = float(cutoff)
    except (TypeError, ValueError):
        raise InputError(f"cutoff must be a number, got {cutoff!r}") from None
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise InputError(f"cutoff must be a positive finite distance in Angstrom, got {cutoff}")
    if n_atoms and not bool(torch.isfinite(pos).all()):
        atom = int(torch.nonzero(~torch.isfinite(pos).all(dim=1))[0])
        b = int(torch.searchsorted(offsets, atom, right=True)) - 1
        raise InputError("non-finite position", record=f"structure {b}, atom {atom}")
    if pbc is None:
        pbc = torch.zeros((n_struct, 3), dtype=torch.bool, device=device)
    elif not isinstance(pbc, torch.Tensor) or tuple(pbc.shape) != (n_struct, 3):
        raise InputError(f"pbc must be a ({n_struct}, 3) tensor, got {_shape_of(pbc)}")
    pbc = pbc.to(device=device, dtype=torch.bool)
    if cell is None:
        if bool(pbc.any()):
            raise InputError("periodic structures need a cell")
        cell = torch.zeros((n_struct, 3, 3), dtype=pos.dtype, device=device)
    elif not isinstance(cell, torch.Tensor) or tuple(cell.shape) != (n_struct, 3, 3):
        raise InputError(f"cell must be a ({n_struct}, 3, 3) tensor, got {_shape_of(cell)}")
    cell = cell.detach().to(device=device, dtype=pos.dtype)
    bad = ~torch.isfinite(cell).flatten(1).all(dim=1)
    if bool(bad.any()):
        raise InputError("non-finite cell", record=f"structure {int(torch.nonzero(bad)[0])}")
    return pos, offsets, cutoff, cell, pbc


def _shape_of(x: object) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _chunks(work: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Split consecutive items into [start, stop) runs whose summed work stays within budget."""
    ends = torch.cumsum(work, 0).cpu()
    runs, start, base = [], 0, 0
    n = ends.numel()
    while start < n:
        stop = int(torch.searchsorted(ends, base + budget, right=True))
        stop = max(stop, start + 1)
        runs.append((start, stop))
        base, start = int(ends[stop - 1]), stop
    return runs


def _ragged_arange(counts: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For runs of the given lengths: the run of each element and its index within the run."""
    device = counts.device
    run = torch.repeat_interleave(
        torch.arange(counts.numel(), device=device), counts, output_size=total
    )
    starts = torch.cumsum(counts, 0) - counts
    return run, torch.arange(total, device=device) - starts[run]


def _dense_pairs(
    pos: torch.Tensor, offsets: torch.Tensor, structs: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ordered pair i != j of every selected (non-periodic, small) structure."""
    counts = offsets[structs + 1] - offsets[structs]
    sources, targets = [], []
    for a, b in _chunks(counts * counts, _PAIR_BUDGET):
        n = counts[a:b]
        start = offsets[structs[a:b]]
        n_atoms = int(n.sum())
        s_of_atom, k = _ragged_arange(n, n_atoms)
        atom = start[s_of_atom] + k
        row_len = n[s_of_atom]
        total = int((n * n).sum())
        row, col = _ragged_arange(row_len, total)
        i = atom[row]
        j = start[s_of_atom[row]] + col
        d = pos[j] - pos[i]
        keep = (torch.linalg.vector_norm(d, dim=1) < cutoff) & (i != j)
        sources.append(i[keep])
        targets.append(j[keep])
    edge_index = torch.stack([torch.cat(sources), torch.cat(targets)])
    return edge_index, pos.new_zeros((edge_index.shape[1], 3))


def _complete_cell(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """Replace the lattice vectors of non-periodic directions by unit vectors that make the cell
    invertible (normal to the periodic vectors). Images and wrapping never use those rows."""
    out = cell.clone()
    n_per = pbc.sum(dim=1)
    eye = torch.tensor(_EYE_AXES, dtype=cell.dtype, device=cell.device)
    unit = torch.nn.functional.normalize
    for k in range(3):
        one = (n_per == 1) & pbc[:, k]
        if bool(one.any()):
            a = cell[one, k]
            least = torch.argmin(a.abs(), dim=1)
            u = unit(torch.linalg.cross(a, eye[least]), dim=1)
            v = unit(torch.linalg.cross(a, u), dim=1)
            out[one, (k + 1) % 3] = u
            out[one, (k + 2) % 3] = v
        two = (n_per == 2) & ~pbc[:, k]
        if bool(two.any()):
            a, b = cell[two, (k + 1) % 3], cell[two, (k + 2) % 3]
            out[two, k] = unit(torch.linalg.cross(a, b), dim=1)
    out[n_per == 0] = eye
    return out


def _cell_geometry(
    cell: torch.Tensor, pbc: torch.Tensor, structs: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Completed cells, their perpendicular heights (Angstrom) and images per direction."""
    full = _complete_cell(cell, pbc)
    crosses = torch.stack(
        [torch.linalg.cross(full[:, (k + 1) % 3], full[:, (k + 2) % 3]) for k in range(3)], dim=1
    )
    volume = torch.linalg.det(full).abs()
    area = torch.linalg.vector_norm(crosses, dim=2)
    scale = torch.linalg.vector_norm(full, dim=2).prod(dim=1)
    singular = volume <= 1e3 * torch.finfo(cell.dtype).eps * scale
    if bool(singular.any()):
        b = int(structs[torch.nonzero(singular)[0]])
        raise InputError("cell is singular in its periodic directions", record=f"structure {b}")
    heights = volume[:, None] / area
    n_img = torch.where(pbc, torch.floor(_reach(cutoff, heights)).long() + 1, 0)
    return full, heights, n_img


def _reach(cutoff: float, heights: torch.Tensor) -> torch.Tensor:
    """Cutoff in fractional units along each lattice direction, padded against rounding."""
    rel = 1e3 * torch.finfo(heights.dtype).eps
    return cutoff / heights * (1 + rel) + rel


def _cell_list_pairs(
    pos: torch.Tensor,
    offsets: torch.Tensor,
    structs: torch.Tensor,
    cutoff: float,
    cell: torch.Tensor,
    pbc: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell-list neighbours of the selected structures, chunked by the number of image points."""
    pbc_s = pbc[structs]
    full, heights, n_img = _cell_geometry(cell[structs], pbc_s, structs, cutoff)
    counts = offsets[structs + 1] - offsets[structs]
    n_images = (2 * n_img + 1).prod(dim=1)
    edges, shifts = [], []
    for a, b in _chunks(counts * n_images, _PAIR_BUDGET):
        e, s = _cell_list_group(
            pos, offsets[structs[a:b]], counts[a:b], cutoff, full[a:b], pbc_s[a:b], heights[a:b],
            n_img[a:b],
        )  # fmt: skip
        edges.append(e)
        shifts.append(s)
    return torch.cat(edges, dim=1), torch.cat(shifts)


def _cell_list_group(
    pos: torch.Tensor,
    start: torch.Tensor,
    counts: torch.Tensor,
    cutoff: float,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    heights: torch.Tensor,
    n_img: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbours of one group of structures; atoms are rows ``start[b] + k`` of ``pos``."""
    dtype = pos.dtype
    sb, k = _ragged_arange(counts, int(counts.sum()))
    atom = start[sb] + k
    p = pos[atom]
    frac = torch.einsum("ni,nij->nj", p, torch.linalg.inv(cell)[sb])
    wrap = torch.where(pbc[sb], torch.floor(frac), 0)
    home = p - torch.einsum("ni,nij->nj", wrap, cell[sb])
    src, img, pts = _image_points(frac - wrap, home, sb, cutoff, cell, pbc, heights, n_img)
    hi, hj, image = _close_pairs(home, sb, src, img, pts, cutoff, counts.numel())
    image = image + wrap.long()[hi] - wrap.long()[hj]
    shift = torch.einsum("ni,nij->nj", image.to(dtype), cell[sb[hi]])
    i, j = atom[hi], atom[hj]
    exact = torch.linalg.vector_norm(pos[j] - pos[i] + shift, dim=1) < cutoff
    i, j, image, shift = i[exact], j[exact], image[exact], shift[exact]
    order = _lexsort(i, j, image)
    return torch.stack([i[order], j[order]]), shift[order]


def _image_points(
    frac: torch.Tensor,
    home: torch.Tensor,
    sb: torch.Tensor,
    cutoff: float,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    heights: torch.Tensor,
    n_img: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Periodic images of the wrapped atoms that can come within the cutoff of their cell.

    Returns per point: the atom row it images, its integer image (P, 3) and position (P, 3).
    """
    dims = 2 * n_img + 1
    per_atom = dims.prod(dim=1)[sb]
    src, m = _ragged_arange(per_atom, int(per_atom.sum()))
    s = sb[src]
    d = dims[s]
    img = torch.stack([m // (d[:, 1] * d[:, 2]), (m // d[:, 2]) % d[:, 1], m % d[:, 2]], dim=1)
    img = img - n_img[s]
    reach = _reach(cutoff, heights[s])
    f = frac[src] + img
    keep = (((f > -reach) & (f < 1 + reach)) | ~pbc[s]).all(dim=1)
    src, img, s = src[keep], img[keep], s[keep]
    pts = home[src] + torch.einsum("ni,nij->nj", img.to(home.dtype), cell[s])
    return src, img, pts


def _close_pairs(
    home: torch.Tensor,
    sb: torch.Tensor,
    src: torch.Tensor,
    img: torch.Tensor,
    pts: torch.Tensor,
    cutoff: float,
    n_struct: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs (home atom, image point) closer than the cutoff, found through a cell list.

    Points are binned per structure on a grid of boxes of side ``cutoff / _BIN_SPLIT`` (padded
    against rounding; wider where a structure would need more than ``_MAX_BINS`` bins along an
    axis, which keeps the bin keys of a whole group within int64); each atom scans the
    (2r + 1)^2 columns of 2r + 1 consecutive bins around it (r = ``_BIN_SPLIT``).
    Returns home rows i, imaged rows j and integer images, self pairs excluded.
    """
    device, r = home.device, _BIN_SPLIT
    extent = float(pts.abs().max()) if pts.numel() else 0.0
    reach = cutoff + 1e3 * torch.finfo(home.dtype).eps * (cutoff + extent)
    ps = sb[src]
    index = ps[:, None].expand(-1, 3)
    lo = torch.full((n_struct, 3), torch.inf, dtype=home.dtype, device=device)
    lo = lo.scatter_reduce(0, index, pts, reduce="amin")
    span = torch.zeros_like(lo).scatter_reduce(0, index, pts - lo[ps], reduce="amax")
    width = torch.clamp(span / _MAX_BINS, min=reach / r)
    pt_bin = torch.floor((pts - lo[ps]) / width[ps]).long() + r
    grid = torch.zeros((n_struct, 3), dtype=torch.long, device=device)
    grid = grid.scatter_reduce(0, ps[:, None].expand(-1, 3), pt_bin, reduce="amax") + r + 1
    size = grid.prod(dim=1)
    base = torch.cumsum(size, 0) - size
    pt_key = base[ps] + (pt_bin[:, 0] * grid[ps, 1] + pt_bin[:, 1]) * grid[ps, 2] + pt_bin[:, 2]
    pt_key, order = torch.sort(pt_key)
    src, img = src[order], img[order]
    pts_t = pts[order].T.contiguous()
    home_t = home.T.contiguous()

    home_bin = torch.floor((home - lo[sb]) / width[sb]).long() + r
    g = grid[sb]
    steps = torch.arange(-r, r + 1, device=device)
    bx = home_bin[:, 0, None, None] + steps[None, :, None]
    by = home_bin[:, 1, None, None] + steps[None, None, :]
    column = (base[sb, None, None] + (bx * g[:, 1, None, None] + by) * g[:, 2, None, None]).flatten(
        1
    )
    first = torch.searchsorted(pt_key, column + (home_bin[:, 2, None] - r))
    lens_all = torch.searchsorted(pt_key, column + (home_bin[:, 2, None] + r), right=True) - first
    n_cand = lens_all.sum(dim=1)

    sources, targets, images = [], [], []
    home_idx = torch.arange(home.shape[0], device=device)
    for a, b in _chunks(n_cand, _PAIR_BUDGET):
        lens = lens_all[a:b].flatten()
        total = int(lens.sum())
        hi = torch.repeat_interleave(home_idx[a:b], n_cand[a:b], output_size=total)
        jump = torch.repeat_interleave(
            first[a:b].flatten() - (torch.cumsum(lens, 0) - lens), lens, output_size=total
        )
        pj = torch.arange(total, device=device) + jump
        diff = pts_t.index_select(1, pj) - home_t.index_select(1, hi)
        near = torch.nonzero((diff * diff).sum(dim=0) < reach * reach).flatten()
        hi, pj = hi[near], pj[near]
        hj = src[pj]
        not_self = (hj != hi) | (img[pj] != 0).any(dim=1)
        sources.append(hi[not_self])
        targets.append(hj[not_self])
        images.append(img[pj[not_self]])
    return torch.cat(sources), torch.cat(targets), torch.cat(images)


def _lexsort(i: torch.Tensor, j: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Order sorting by i, then j, then the integer image (lexicographic)."""
    if i.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=i.device)
    low = image.amin(dim=0)
    span = image.amax(dim=0) - low + 1
    rel = image - low
    order = torch.sort((rel[:, 0] * span[1] + rel[:, 1]) * span[2] + rel[:, 2], stable=True).indices
    pair = (i - i.min()) * (j.max() + 1) + j
    return order[torch.sort(pair[order], stable=True).indices]
