"""scratch: the same architecture, randomly initialised; the reference that pretraining must beat."""

from atomcollapse.training.strategies.base import Strategy


class Scratch(Strategy):
    name = "scratch"
    summary = "same architecture, random init (init seed)"
    order = 0
    needs_pretrained = False
    fresh_backbone = True


STRATEGY = Scratch
