"""finetune: every parameter of the pretrained backbone and the new head, one learning rate."""

from atomcollapse.training.strategies.base import Strategy


class Finetune(Strategy):
    name = "finetune"
    summary = "all parameters, one learning rate"
    order = 10


STRATEGY = Finetune
