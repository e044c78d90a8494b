"""finetune-llrd: layer-wise learning-rate multipliers (JMP's recipe)."""

from __future__ import annotations

from dataclasses import dataclass

from atomcollapse.models.model import AtomisticModel
from atomcollapse.training.strategies.base import Strategy, layer_multipliers, trainable

#: Layer multipliers of JMP's six blocks (first to last), interpolated to the backbone's depth.
JMP_LAYER_MULTIPLIERS = (0.55, 0.40, 0.30, 0.40, 0.55, 0.625)


@dataclass(frozen=True)
class LLRDSettings:
    """Learning-rate multipliers: the embedding, the layers (first to last; interpolated to the
    backbone's depth) and the heads."""

    embedding: float = 0.3
    layers: tuple[float, ...] = JMP_LAYER_MULTIPLIERS
    heads: float = 1.0

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if not self.layers or any(m <= 0 for m in self.layers):
            out.append(("layers", "must be a non-empty list of positive multipliers"))
        for key in ("embedding", "heads"):
            if getattr(self, key) <= 0:
                out.append((key, "must be positive"))
        return out


class FinetuneLLRD(Strategy):
    """Embedding, then each layer, then the heads, each at its own multiplier."""

    name = "finetune-llrd"
    summary = "layer-wise learning rates (JMP: embedding 0.3, blocks 0.55..0.625, heads 1)"
    order = 20
    Settings = LLRDSettings

    def multipliers(self, model: AtomisticModel) -> dict[str, float]:
        s = self.settings
        blocks = [name for name, _ in model.backbone.parameter_blocks()]
        layers = [b for b in blocks if b != "embedding"]
        mults = dict(zip(layers, layer_multipliers(len(layers), s.layers), strict=True))
        mults["embedding"] = s.embedding
        return mults

    def param_groups(self, model: AtomisticModel, lr: float) -> list[dict]:
        mults = self.multipliers(model)
        groups: list[dict] = []
        seen: set[int] = set()
        last = 1.0
        for name, params in model.backbone.parameter_blocks():
            last = mults[name]
            groups.append({"name": name, "params": list(params), "base_lr": lr * last})
            seen.update(id(p) for p in params)
        rest = [p for p in model.backbone.parameters() if id(p) not in seen]
        if rest:
            groups.append({"name": "backbone:other", "params": rest, "base_lr": lr * last})
        for h in self.heads:
            groups.append({"name": f"head:{h}", "params": trainable(model.heads[h]),
                           "base_lr": lr * self.settings.heads})  # fmt: skip
        return groups


STRATEGY = FinetuneLLRD
