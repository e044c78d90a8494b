"""linear-probe: the backbone frozen; only the new property head trains."""

from atomcollapse.models.model import AtomisticModel
from atomcollapse.training.strategies.base import Strategy, trainable


class LinearProbe(Strategy):
    name = "linear-probe"
    summary = "backbone frozen, only the property head trains"
    order = 30

    def param_groups(self, model: AtomisticModel, lr: float) -> list[dict]:
        return [{"name": "head:property", "params": trainable(model.heads["property"]),
                 "base_lr": lr}]  # fmt: skip

    def prepare(self, model: AtomisticModel) -> None:
        model.backbone.requires_grad_(False)

    def describe(self) -> dict:
        return {**super().describe(), "backbone": "frozen"}


STRATEGY = LinearProbe
