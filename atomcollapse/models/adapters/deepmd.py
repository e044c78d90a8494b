"""DeePMD-kit (``deepmd-kit==3.2.0``, PyTorch backend) behind the backbone interface.

``--pretrained deepmd:PATH[:BRANCH]`` loads a DeePMD PyTorch checkpoint (``model.ckpt.pt``, as
``dp --pt train`` writes it: ``{"model": state_dict, ...}`` whose ``_extra_state`` carries the
model parameters) with ``torch.load(weights_only=True)``, exactly as DeePMD's own ``DeepEval``
reads it: tensors and plain containers, never code. ``PATH`` may also be one of DeePMD's
published names (``DPA-3.1-3M``, see :data:`PUBLISHED`), which DeePMD's own
``deepmd.pretrained.download.resolve_model_path`` fetches into its cache
(``~/.cache/deepmd/pretrained/models``) and checks against its sha256; offline, one line says
which file to put where. Frozen ``.pth`` files (TorchScript) are refused: use the checkpoint.

The model is rebuilt with DeePMD's ``get_model`` from the checkpoint's parameters, and its
modules run on our batch:

- neighbour list: DeePMD's own ``extend_input_and_build_neighbor_list`` (periodic images for a
  full periodic cell, the ``sel`` nearest neighbours within ``rcut``) on the batch's structures,
  padded into frames with virtual atoms (type -1) as DeePMD pads; the batch's radius graph is not
  used. Forces are -dE/dR by autograd through the positions. As in DeePMD, an atom with more
  than ``sel`` neighbours inside ``rcut`` sees only its ``sel`` nearest (a model whose ``sel``
  is too small for a dense crystal is not exactly size-consistent; DeePMD warns about it).
- backbone = the descriptor (DPA-3: type embedding, edge/angle embeddings, repflow layers).
  ``layers = [act(type embedding), layer1 .. layerL]`` (``n_dim`` features per atom each);
  ``node`` = the descriptor's output (the last layer's node features, plus the type embedding
  when ``concat_output_tebd``). Parameter blocks: ``embedding`` (type, edge, angle and charge/spin
  embeddings), ``layer1..layerL`` (one repflow layer each).
- energy head = the chosen branch's energy fitting net (the per-atom MLP; what MFT keeps
  training) plus DeePMD's fixed per-type energy bias ``out_bias`` (a buffer, not trained by
  gradient in DeePMD either) and, for multi-task checkpoints, the branch's fixed case embedding
  (a buffer), summed per structure: eV.
- multi-task checkpoints (``model_dict``): the branch is named after the path
  (``deepmd:PATH:BRANCH``, aliases and case-insensitive names resolved with DeePMD's
  ``get_model_dict``, as ``DeepEval(head=...)`` and ``finetune_head`` do); without one, only a
  ``Default`` alias is taken; otherwise one line lists the branches.
- elements: the type map's element symbols; atoms of other elements are refused.
- ``reinitialize(seed)``: every parameter drawn afresh by DeePMD's own initialisers with
  ``seed`` as the descriptor's seed; the environment-matrix statistics (``mean``/``stddev``
  buffers, input normalisation) stay.
- precision: the modules run in their parameters' dtype (``.float()`` / ``.double()`` retarget
  DeePMD's per-module ``prec``); the loaded model keeps the checkpoint's precision (DeePMD's
  ``precision`` setting), takes float32 or float64 batches and gives outputs in the batch's dtype.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from atomcollapse.constants import SYMBOLS
from atomcollapse.data.batch import AtomsBatch
from atomcollapse.errors import InputError, not_a_file
from atomcollapse.models.adapters.elements import element_table, species_of
from atomcollapse.models.base import Backbone, BackboneOutput
from atomcollapse.models.model import AtomisticModel

INSTALL = "make deepmd (builds deepmd-kit==3.2.0 against the installed torch), then pip install 'atomcollapse[deepmd]'"
#: published names DeePMD 3.2 can download (deepmd.pretrained.registry), as listed
PUBLISHED = ("DPA-3.1-3M", "DPA-3.2-5M", "DPA-3.3-1M", "DPA-2.4-7M", "DPA3-Omol-Large")
SUPPORTED_DESCRIPTORS = ("dpa3",)
_SYMBOL_Z = {s: z for z, s in enumerate(SYMBOLS) if z > 0}


def _deepmd() -> Any:
    """``deepmd.pt.model.model`` (imported once); InputError naming the extra when absent."""
    try:
        import deepmd.pt.model.model as dp_model
    except ImportError as e:
        raise InputError(f"--pretrained deepmd:... needs deepmd-kit ({e}); {INSTALL}") from None
    except RuntimeError as e:  # deepmd's ops compiled against another torch
        first = str(e).splitlines()[0]
        raise InputError(f"deepmd-kit does not load ({first}); {INSTALL}") from None
    return dp_model


def _build(params: dict[str, Any]) -> Any:
    """A fresh DeePMD model (CPU) of ``params`` (one branch's model parameters)."""
    model = _deepmd().get_model(copy.deepcopy(params))
    return model.to("cpu")


def _check_supported(params: dict[str, Any], source: str) -> None:
    kind = params.get("type", "standard")
    descriptor = (params.get("descriptor") or {}).get("type")
    fitting = (params.get("fitting_net") or {}).get("type", "ener")
    if kind != "standard" or "spin" in params or params.get("use_srtab"):
        raise InputError(f"DeePMD model type {kind!r} is not supported (standard models only)",
                         file=source)  # fmt: skip
    if descriptor not in SUPPORTED_DESCRIPTORS:
        raise InputError(
            f"DeePMD descriptor {descriptor!r} is not supported by the bridge "
            f"(supported: {', '.join(SUPPORTED_DESCRIPTORS)})",
            file=source,
        )
    if fitting != "ener":
        raise InputError(f"DeePMD fitting {fitting!r} is not an energy fitting", file=source)


def elements_of(type_map: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(atomic numbers, type indices)`` of the type map's element symbols."""
    pairs = [(_SYMBOL_Z[s], i) for i, s in enumerate(type_map) if s in _SYMBOL_Z]
    return tuple(z for z, _ in pairs), tuple(i for _, i in pairs)


def _sync_precision(module: nn.Module) -> None:
    """Point DeePMD's per-module ``prec`` (the dtype it casts inputs to) at the parameters'."""
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), None)
    if dtype is None:
        return
    for m in module.modules():
        if isinstance(getattr(m, "prec", None), torch.dtype):
            setattr(m, "prec", dtype)  # noqa: B010


class _DeepmdModule(nn.Module):
    """Keeps DeePMD's ``prec`` attributes in step with ``.float()`` / ``.double()``."""

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        out = super()._apply(fn, recurse)
        _sync_precision(self)
        return out


class DeepmdBackbone(_DeepmdModule, Backbone):
    """A DeePMD descriptor (DPA-3) of one model branch; ``params`` are its model parameters."""

    table: torch.Tensor

    def __init__(self, *, params: dict[str, Any], branch: str | None = None) -> None:
        super().__init__()
        _check_supported(params, "deepmd model_args")
        model = _build(params)
        atomic = model.atomic_model
        self.params = copy.deepcopy(params)
        self.branch = branch
        self.descriptor = atomic.descriptor
        self.pair_excl = atomic.pair_excl
        self.cutoff = float(model.get_rcut())
        self.sel = list(model.get_sel())
        self.type_map = list(model.get_type_map())
        self.feature_dim = int(self.descriptor.get_dim_out())
        self.elements, types = elements_of(self.type_map)
        self.register_buffer("table", element_table(self.elements, types), persistent=False)
        _sync_precision(self)

    @property
    def _flows(self) -> Any:
        return self.descriptor.repflows

    def forward(self, batch: AtomsBatch) -> BackboneOutput:
        from deepmd.pt.utils.nlist import extend_input_and_build_neighbor_list

        species = species_of(batch, self.table, f"DeePMD ({self._name()})")
        dtype = next(self.parameters()).dtype
        node = None
        layers: list[torch.Tensor | None] = [None] * (len(self._flows.layers) + 1)
        n_atoms = batch.offsets[1:] - batch.offsets[:-1]
        for rows, cell in _frame_groups(batch):
            nf, nmax = len(rows), int(n_atoms[rows].max())
            slot, atom = _slots(batch, rows, nmax)
            coord = batch.positions.new_zeros(nf * nmax, 3).index_copy(
                0, slot, batch.positions[atom]
            )
            atype = species.new_full((nf * nmax,), -1).index_copy(0, slot, species[atom])
            coord, atype = coord.to(dtype).view(nf, nmax, 3), atype.view(nf, nmax)
            box = None if cell is None else cell.to(dtype).reshape(nf, 9)
            ext_coord, ext_atype, mapping, nlist = extend_input_and_build_neighbor_list(
                coord, atype, self.cutoff, self.sel, mixed_types=True, box=box
            )
            if self.pair_excl is not None:
                nlist = torch.where(self.pair_excl(nlist, ext_atype) == 1, nlist, -1)
            ext_atype = torch.where(ext_atype >= 0, ext_atype, 0)
            captured: list[torch.Tensor] = []
            with _capturing(self._flows.layers, captured):
                desc = self.descriptor(ext_coord, ext_atype, nlist, mapping=mapping)[0]
            first = self._flows.act(self.descriptor.type_embedding(ext_atype[:, :nmax]))
            per_frame = [desc, first, *captured]
            flat = [t.to(dtype).reshape(nf * nmax, -1).index_select(0, slot) for t in per_frame]
            if node is None:
                node = flat[0].new_zeros(batch.numbers.numel(), flat[0].shape[1])
                layers = [t.new_zeros(batch.numbers.numel(), t.shape[1]) for t in flat[1:]]
            node = node.index_copy(0, atom, flat[0])
            layers = [
                cast(torch.Tensor, acc).index_copy(0, atom, t)
                for acc, t in zip(layers, flat[1:], strict=True)
            ]
        out_dtype = batch.positions.dtype
        assert node is not None
        return BackboneOutput(
            node=node.to(out_dtype), layers=[cast(torch.Tensor, t).to(out_dtype) for t in layers]
        )

    def _name(self) -> str:
        return f"branch {self.branch}" if self.branch else "type map " + " ".join(self.type_map)

    def _embedding_modules(self) -> list[nn.Module]:
        flows = self._flows
        return [self.descriptor.type_embedding, flows.edge_embd, flows.angle_embd,
                *(getattr(self.descriptor, n) for n in ("chg_embedding", "spin_embedding",
                                                        "mix_cs_mlp")
                  if getattr(self.descriptor, n, None) is not None)]  # fmt: skip

    def parameter_blocks(self) -> list[tuple[str, list[nn.Parameter]]]:
        in_layers = {id(p) for layer in self._flows.layers for p in layer.parameters()}
        embedding = [p for p in self.parameters() if id(p) not in in_layers]
        blocks = [("embedding", embedding)]
        for k, layer in enumerate(self._flows.layers):
            blocks.append((f"layer{k + 1}", list(layer.parameters())))
        return blocks

    def model_args(self) -> dict:
        return {"type": "deepmd", "params": copy.deepcopy(self.params), "branch": self.branch}

    def reinitialize(self, seed: int) -> None:
        """Fresh parameters from DeePMD's initialisers with ``seed`` (the scratch arm); the
        environment-matrix statistics stay."""
        params = copy.deepcopy(self.params)
        params["descriptor"]["seed"] = int(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = _build(params).atomic_model.descriptor
        kept = {n for n, _ in self.descriptor.named_buffers()}
        state = {k: v for k, v in fresh.state_dict().items() if k not in kept}
        with torch.no_grad():
            for name, p in self.descriptor.named_parameters():
                p.copy_(state[name].to(p.dtype))


class DeepmdEnergyHead(_DeepmdModule):
    """The branch's energy fitting net plus DeePMD's per-type energy bias; (B,) eV."""

    table: torch.Tensor
    out_bias: torch.Tensor

    def __init__(self, feature_dim: int, *, params: dict[str, Any], branch: str | None = None):
        super().__init__()
        _check_supported(params, "deepmd head_args")
        model = _build(params)
        atomic = model.atomic_model
        if int(atomic.descriptor.get_dim_out()) != feature_dim:
            raise ValueError(f"DeePMD head width is {atomic.descriptor.get_dim_out()}, "
                             f"not {feature_dim}")  # fmt: skip
        self.params = copy.deepcopy(params)
        self.branch = branch
        self.feature_dim = feature_dim
        self.fitting = atomic.fitting_net
        self.atom_excl = atomic.atom_excl
        bias, _ = atomic._fetch_out_stat(["energy"])
        self.register_buffer("out_bias", bias["energy"].detach().clone().reshape(-1))
        elements, types = elements_of(list(model.get_type_map()))
        self.register_buffer("table", element_table(elements, types), persistent=False)
        _sync_precision(self)

    def head_args(self) -> dict:
        return {"type": "deepmd-energy", "feature_dim": self.feature_dim,
                "params": copy.deepcopy(self.params), "branch": self.branch}  # fmt: skip

    def forward(self, features: BackboneOutput, batch: AtomsBatch) -> torch.Tensor:
        species = species_of(batch, self.table, "DeePMD")
        dtype = self.out_bias.dtype
        desc = features.node.to(dtype).unsqueeze(0)
        atype = species.unsqueeze(0)
        per_atom = self.fitting(desc, atype)["energy"].reshape(-1).to(dtype)
        per_atom = per_atom + self.out_bias.index_select(0, species)
        if self.atom_excl is not None:
            per_atom = per_atom * self.atom_excl(atype).reshape(-1).to(dtype)
        out = per_atom.new_zeros(batch.n_structures).index_add_(0, batch.batch, per_atom)
        return out.to(features.node.dtype)


@contextlib.contextmanager
def _capturing(layers: nn.ModuleList, into: list[torch.Tensor]) -> Iterator[None]:
    """Keep each repflow layer's node features (its first output) in ``into``. DeePMD calls
    ``layer.forward`` directly, past forward hooks, so the method is wrapped on the instance."""

    def wrap(layer: nn.Module) -> Any:
        inner = layer.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            out = inner(*args, **kwargs)
            into.append(out[0])
            return out

        return forward

    for layer in layers:
        layer.forward = wrap(layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def _frame_groups(batch: AtomsBatch) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Structure indices grouped into molecules (no cell) and fully periodic structures (with
    their cells); a partly periodic structure is refused (DeePMD takes none)."""
    n = batch.n_structures
    everything = torch.arange(n, device=batch.positions.device)
    if batch.cell is None or batch.pbc is None:
        return [(everything, None)]
    pbc = batch.pbc.to(torch.bool)
    full, none = pbc.all(dim=1), ~pbc.any(dim=1)
    if not bool((full | none).all()):
        b = int(torch.nonzero(~(full | none))[0])
        row = int(batch.index[b]) if batch.index is not None else b
        raise InputError("DeePMD takes molecules or fully periodic cells, not partly periodic "
                         "ones", record=f"structure {row}")  # fmt: skip
    groups: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    if bool(none.any()):
        groups.append((everything[none], None))
    if bool(full.any()):
        groups.append((everything[full], batch.cell[full]))
    return groups


def _slots(batch: AtomsBatch, rows: torch.Tensor, nmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(slot, atom)``: padded frame slot ``f * nmax + k`` of the k-th atom of structure
    ``rows[f]``, and that atom's index in the batch."""
    start, stop = batch.offsets[rows], batch.offsets[rows + 1]
    counts = stop - start
    frame = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), counts)
    first = torch.cumsum(counts, 0) - counts
    k = torch.arange(int(counts.sum()), device=rows.device) - first[frame]
    return frame * nmax + k, start[frame] + k


BACKBONES = {"deepmd": DeepmdBackbone}
HEADS = {"deepmd-energy": DeepmdEnergyHead}


def split_name(name: str) -> tuple[str, str | None]:
    """``deepmd:PATH[:BRANCH]`` -> ``(PATH, BRANCH or None)``. A ``:`` inside an existing path is
    part of the path."""
    rest = name.strip()
    if rest.lower().startswith("deepmd:"):
        rest = rest[len("deepmd:") :]
    if not rest:
        raise InputError("--pretrained deepmd: needs a checkpoint path: deepmd:PATH.pt[:BRANCH]")
    if Path(rest).exists() or ":" not in rest:
        return rest, None
    path, _, branch = rest.rpartition(":")
    return path, branch or None


def _published(path: str) -> str | None:
    """DeePMD's registered name that ``path`` spells (case-insensitive), if not a file."""
    if Path(path).exists():
        return None
    try:
        from deepmd.pretrained.registry import MODEL_REGISTRY
    except ImportError:
        names: tuple[str, ...] = PUBLISHED
    else:
        names = tuple(MODEL_REGISTRY)
    return next((n for n in names if n.lower() == path.lower()), None)


def cached_file(name: str) -> Path | None:
    """Where DeePMD's cache keeps published model ``name`` (whether or not it is there)."""
    try:
        from deepmd.pretrained.download import DEFAULT_CACHE_DIR
        from deepmd.pretrained.registry import MODEL_REGISTRY
    except ImportError:
        return None
    info = MODEL_REGISTRY.get(name)
    return None if info is None else Path(DEFAULT_CACHE_DIR) / str(info["filename"])


def weights_present(name: str) -> bool | None:
    """Whether a listed name's weights are on this machine (published: in DeePMD's cache)."""
    path, _ = split_name(name)
    published = _published(path)
    if published is None:
        return Path(path).is_file()
    target = cached_file(published)
    return None if target is None else target.is_file()


def resolve(path: str) -> Path:
    """The checkpoint file of ``path``: the file itself, or a published model fetched (or
    found) by DeePMD's own download helper; offline, one line naming the file and where."""
    published = _published(path)
    if published is None:
        return Path(path)
    _deepmd()
    from deepmd.pretrained import download
    from deepmd.pretrained.registry import MODEL_REGISTRY

    quiet = logging.getLogger("atomcollapse.deepmd.download")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        return Path(download.resolve_model_path(published, logger=quiet))
    except (RuntimeError, OSError, ValueError) as e:
        info = MODEL_REGISTRY[published]
        target = Path(download.DEFAULT_CACHE_DIR) / str(info["filename"])
        url = str(info["urls"][0]).split("?")[0]
        raise InputError(
            f"could not download DeePMD model {published} ({str(e).splitlines()[0]}); put "
            f"{target.name} (sha256 {info['sha256'][:12]}..., from {url}) at {target}, or pass "
            f"--pretrained deepmd:PATH/{target.name}[:BRANCH]"
        ) from None


def read(path: Path) -> dict[str, Any]:
    """The checkpoint's state dict (``weights_only``), checked to be a DeePMD one."""
    from atomcollapse.models.checkpoint import load_plain

    if not path.is_file():
        raise not_a_file(path, "DeePMD checkpoint")
    if path.suffix == ".pth":
        raise InputError(
            "frozen DeePMD models (.pth, TorchScript) are not loaded: pass the training "
            "checkpoint (model.ckpt.pt), which loads without running code",
            file=path,
        )
    payload = load_plain(path, "DeePMD checkpoint")
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    extra = state.get("_extra_state") if isinstance(state, dict) else None
    if not isinstance(extra, dict) or not isinstance(extra.get("model_params"), dict):
        raise InputError("not a DeePMD PyTorch checkpoint (no _extra_state.model_params)",
                         file=path)  # fmt: skip
    return cast(dict[str, Any], state)


def select_branch(
    state: dict[str, Any], branch: str | None, path: Path
) -> tuple[dict[str, Any], str | None, dict[str, torch.Tensor]]:
    """``(model params, branch, weights with the prefix model.Default.)`` of the branch."""
    params = state["_extra_state"]["model_params"]
    if "model_dict" not in params:
        if branch is not None:
            raise InputError(f"branch {branch!r} asked for, but this is a single-task DeePMD "
                             "model (no branches)", file=path)  # fmt: skip
        head = "Default"
        chosen: dict[str, Any] = params
    else:
        from deepmd.utils.model_branch_dict import get_model_dict

        aliases, _ = get_model_dict(params["model_dict"])
        names = list(params["model_dict"])
        wanted = branch if branch is not None else "Default"
        head_or_none = aliases.get(wanted) or next(
            (v for k, v in aliases.items() if k.lower() == wanted.lower()), None
        )
        if head_or_none is None:
            what = f"has no branch {branch!r}" if branch else "is multi-task: name a branch"
            raise InputError(
                f"DeePMD model {what} (deepmd:{path}:BRANCH); branches: {', '.join(names)}",
                file=path,
            )
        head = head_or_none
        chosen = params["model_dict"][head]
        branch = head
    prefix = f"model.{head}."
    weights = {
        "model.Default." + k[len(prefix) :]: v
        for k, v in state.items()
        if k.startswith(prefix) and isinstance(v, torch.Tensor)
    }
    return copy.deepcopy(chosen), branch, weights


def load(name: str) -> tuple[AtomisticModel, dict]:
    """``deepmd:PATH[:BRANCH]``: the DeePMD model with its branch's energy head, and
    its meta (elements = the type map's, source, weights hash, model args)."""
    from atomcollapse.artifacts import sha256_file
    from atomcollapse.models.adapters import package_version, weights_hash

    path_text, branch = split_name(name)
    _deepmd()
    path = resolve(path_text)
    state = read(path)
    params, branch, weights = select_branch(state, branch, path)
    _check_supported(params, str(path))
    backbone = DeepmdBackbone(params=params, branch=branch)
    head = DeepmdEnergyHead(backbone.feature_dim, params=params, branch=branch)
    reference = _build(params)
    try:
        reference.load_state_dict(
            {k[len("model.Default.") :]: v for k, v in weights.items()}, strict=True
        )
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise InputError(f"DeePMD weights do not match its parameters ({first[:160]})",
                         file=path) from None  # fmt: skip
    atomic = reference.atomic_model
    backbone.descriptor.load_state_dict(atomic.descriptor.state_dict())
    head.fitting.load_state_dict(atomic.fitting_net.state_dict())
    bias, _ = atomic._fetch_out_stat(["energy"])
    head.out_bias.copy_(bias["energy"].detach().reshape(-1))
    model = AtomisticModel(backbone, {"energy": head})
    meta = {
        "kind": "pretrained", "name": name,
        "elements": [SYMBOLS[z] for z in backbone.elements],
        "source": f"deepmd-kit {package_version('deepmd-kit')} ({path.name}"
        + (f", branch {branch})" if branch else ")"),
        "path": str(path), "branch": branch, "type_map": backbone.type_map,
        "file_sha256": sha256_file(path), "hash": weights_hash(model),
        "model_args": {"backbone": backbone.model_args(), "heads": model.head_args()},
    }  # fmt: skip
    return model, meta
