"""``atomcollapse train`` and ``atomcollapse pretrain``: parse, resolve the config, call training.

Data parallel: ``torchrun --nproc-per-node 2 -m atomcollapse train ...`` (gloo on CPU, NCCL on
GPUs); every rank walks the same global batches and takes its shard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from atomcollapse.cli.common import console, state


def _strategy_help() -> str:
    """The registered strategies with their one-line summaries (read from the registry)."""
    from atomcollapse.training.strategies import strategy_class, strategy_names

    return "; ".join(f"{n}: {strategy_class(n).summary}" for n in strategy_names())


def _layer(value: str | None) -> int | str | None:
    """``--feature-layer``: an index stays an int; ``last`` / ``all`` stay text."""
    if value is None:
        return None
    return int(value) if value.strip().lstrip("-").isdigit() else value


def _batch(value: str | None) -> int | str | None:
    """``--batch-size``: a structure count stays an int; ``auto:N`` stays text."""
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


def _tags(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """``--tag KEY=VALUE`` pairs."""
    from atomcollapse.errors import InputError

    pairs = []
    for v in values or ():
        key, eq, value = v.partition("=")
        if not eq or not key.strip():
            raise InputError(f"--tag {v!r}: expected KEY=VALUE")
        pairs.append((key.strip(), value))
    return tuple(pairs)


def _opt(flag: str, help: str) -> Any:
    return typer.Option(flag, help=help)


def _set(overrides: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Add the given settings (dotted keys spelled with ``__``) that are not None."""
    overrides.update({k.replace("__", "."): v for k, v in kw.items() if v is not None})
    return overrides


def _main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _print_metrics(metrics: dict[str, Any]) -> None:
    unit = metrics["report_unit"]
    title = f"{metrics['strategy']} on {metrics['target']} (seed {metrics['seed']})"
    table = Table(title=title)
    table.add_column("partition")
    for col in ("n", f"MAE ({unit})", f"RMSE ({unit})"):
        table.add_column(col, justify="right")
    for p, m in metrics["partitions"].items():
        table.add_row(p, str(m["n"]), f"{m['mae_report']:.6g}", f"{m['rmse_report']:.6g}")
    console.print(table)
    console.print(
        f"best validation MAE {metrics['best_val_mae']:.6g} {metrics['unit']} at step "
        f"{metrics['best_step']} of {metrics['steps']}"
    )


def train(
    data: Annotated[str, _opt("--data", "Dataset store (name under <data-root>/stores, or path).")],
    split: Annotated[Path, _opt("--split", "Split artifact directory.")],
    out: Annotated[Path, _opt("--out", "Run directory to create.")],
    target: Annotated[str | None, _opt("--target", "Target to learn, e.g. gap.")] = None,
    strategy: Annotated[str | None, _opt("--strategy", _strategy_help())] = None,
    seed: Annotated[int | None, _opt("--seed", "Seed of init, data order, task draws.")] = None,
    pretrained: Annotated[
        Path | None,
        _opt(
            "--pretrained",
            "Pretrained checkpoint, or a registered name (atomcollapse models): ani1x[:K] | "
            "ani1ccx | sevennet-0 | sevennet-mf-0:MODAL | so3lr | chgnet[:V] ...",
        ),
    ] = None,
    ff_data: Annotated[str | None, _opt("--ff-data", "Force-field store (mft).")] = None,
    forgetting_data: Annotated[
        str | None,
        _opt("--forgetting-data", "Force-field store scoring forgetting \\[default: --ff-data]."),
    ] = None,
    config: Annotated[Path | None, _opt("--config", "TOML settings file.")] = None,
    device: Annotated[str | None, _opt("--device", "auto | cpu | cuda \\[default: auto].")] = None,
    bf16: Annotated[bool | None, _opt("--bf16/--no-bf16", "bf16 autocast (CUDA or CPU).")] = None,
    max_train: Annotated[int | None, _opt("--max-train", "Seeded subset of N train rows.")] = None,
    max_eval: Annotated[
        int | None, _opt("--max-eval", "Evaluate at most N of val, id_test, ood_test each.")
    ] = None,
    eval_seed: Annotated[
        int | None, _opt("--eval-seed", "Seed of the --max-eval subsets \\[default: 0].")
    ] = None,
    drop_unsupported_elements: Annotated[
        bool | None,
        _opt("--drop-unsupported-elements", "Leave out structures the model cannot take."),
    ] = None,
    epochs: Annotated[int | None, _opt("--epochs", "Passes over the property data.")] = None,
    steps: Annotated[int | None, _opt("--steps", "Optimiser steps (overrides --epochs).")] = None,
    batch_size: Annotated[
        str | None, _opt("--batch-size", "Structures per batch, or auto:N atoms \\[auto:512].")
    ] = None,
    lr: Annotated[float | None, _opt("--lr", "Peak learning rate.")] = None,
    patience: Annotated[int | None, _opt("--patience", "Evaluations without gain.")] = None,
    loss_convention: Annotated[
        str | None, _opt("--loss-convention", "deepmd (the study's) | mean \\[deepmd].")
    ] = None,
    mixing: Annotated[str | None, _opt("--mixing", "mft: sample | sum.")] = None,
    aux_weight: Annotated[
        float | None, _opt("--aux-weight", "mft: weight of L_ff (both mixings) \\[1].")
    ] = None,
    labels: Annotated[str | None, _opt("--labels", "mft: reference | pseudo.")] = None,
    feature_layer: Annotated[
        str | None,
        _opt("--feature-layer", "Features the property head reads: last | all | layer index."),
    ] = None,
    ff_batch_size: Annotated[
        str | None, _opt("--ff-batch-size", "mft: force-field batch \\[auto:128].")
    ] = None,
    resume: Annotated[bool, _opt("--resume", "Continue the run in --out.")] = False,
    overwrite: Annotated[bool, _opt("--overwrite", "Replace the run in --out.")] = False,
    progress: Annotated[bool | None, _opt("--progress/--no-progress", "Progress bar.")] = None,
    log: Annotated[
        list[str] | None,
        _opt("--log", "Tracking: tensorboard | wandb | csv (repeatable; scalars.csv always)."),
    ] = None,
    tag: Annotated[
        list[str] | None, _opt("--tag", "KEY=VALUE shown by the tracking backends (repeatable).")
    ] = None,
) -> None:
    """Adapt a model to one target with one strategy; writes a run directory."""
    from atomcollapse.training.config import load_config
    from atomcollapse.training.train import TrainInputs, run_train

    overrides = _set({}, target=target, seed=seed, device=device, bf16=bf16, max_train=max_train,
                     max_eval=max_eval, eval_seed=eval_seed,
                     drop_unsupported_elements=drop_unsupported_elements, epochs=epochs,
                     steps=steps, batch_size=_batch(batch_size), patience=patience,
                     loss_convention=loss_convention, strategy__name=strategy, optim__lr=lr,
                     strategy__mixing=mixing, strategy__aux_weight=aux_weight,
                     strategy__labels=labels, strategy__ff_batch_size=_batch(ff_batch_size),
                     head__feature_layer=_layer(feature_layer),
                     log=list(dict.fromkeys(log)) if log else None)  # fmt: skip
    cfg = load_config(config, overrides)
    inputs = TrainInputs(
        data=data, split=split, out=out, pretrained=pretrained, ff_data=ff_data,
        forgetting_data=forgetting_data, data_root=state.data_root, resume=resume,
        overwrite=overwrite, progress=progress, tags=_tags(tag),
    )  # fmt: skip
    metrics = run_train(inputs, cfg)
    if _main_rank():
        _print_metrics(metrics)


def pretrain(
    data: Annotated[str, _opt("--data", "Force-field store (energy eV, forces eV/A).")],
    out: Annotated[Path, _opt("--out", "Checkpoint file to write.")],
    config: Annotated[Path | None, _opt("--config", "TOML settings file.")] = None,
    hidden: Annotated[int | None, _opt("--hidden", "Feature width \\[default: 64].")] = None,
    layers: Annotated[int | None, _opt("--layers", "Interaction layers \\[default: 3].")] = None,
    rbf: Annotated[int | None, _opt("--rbf", "Radial basis functions \\[default: 20].")] = None,
    cutoff: Annotated[float | None, _opt("--cutoff", "Cutoff in A \\[default: 5].")] = None,
    epochs: Annotated[int | None, _opt("--epochs", "Passes over the training frames.")] = None,
    steps: Annotated[int | None, _opt("--steps", "Optimiser steps (overrides --epochs).")] = None,
    batch_size: Annotated[
        str | None, _opt("--batch-size", "Structures per batch, or auto:N atoms.")
    ] = None,
    lr: Annotated[float | None, _opt("--lr", "Peak learning rate.")] = None,
    seed: Annotated[int | None, _opt("--seed", "Seed of init, hold-out, data order.")] = None,
    device: Annotated[str | None, _opt("--device", "auto | cpu | cuda.")] = None,
    bf16: Annotated[bool | None, _opt("--bf16/--no-bf16", "bf16 autocast (CUDA or CPU).")] = None,
    val_fraction: Annotated[float | None, _opt("--val-fraction", "Held out [0.05].")] = None,
    max_train: Annotated[int | None, _opt("--max-train", "Seeded subset of N frames.")] = None,
    patience: Annotated[int | None, _opt("--patience", "Evaluations without gain.")] = None,
    energy_weight: Annotated[float | None, _opt("--energy-weight", "Energy weight.")] = None,
    force_weight: Annotated[float | None, _opt("--force-weight", "Force weight.")] = None,
    energy_weight_end: Annotated[float | None, _opt("--energy-weight-end", "At lr 0.")] = None,
    force_weight_end: Annotated[float | None, _opt("--force-weight-end", "At lr 0.")] = None,
    ramp: Annotated[bool | None, _opt("--ramp/--no-ramp", "Ramp weights with the lr.")] = None,
    loss_convention: Annotated[
        str | None, _opt("--loss-convention", "deepmd (the study's) | mean \\[deepmd].")
    ] = None,
    resume: Annotated[bool, _opt("--resume", "Continue from <out>.state.pt.")] = False,
    overwrite: Annotated[bool, _opt("--overwrite", "Replace an existing checkpoint.")] = False,
    progress: Annotated[bool | None, _opt("--progress/--no-progress", "Progress bar.")] = None,
) -> None:
    """Pretrain a PaiNN on energies and forces; writes a self-describing checkpoint."""
    from atomcollapse.training.config import load_config
    from atomcollapse.training.pretrain import PretrainInputs, run_pretrain

    overrides = _set({}, seed=seed, device=device, bf16=bf16, epochs=epochs, steps=steps,
                     batch_size=_batch(batch_size), patience=patience, val_fraction=val_fraction,
                     max_train=max_train, model__hidden=hidden, model__layers=layers,
                     model__rbf=rbf, model__cutoff=cutoff, optim__lr=lr,
                     ff_loss__energy_weight=energy_weight, ff_loss__force_weight=force_weight,
                     ff_loss__energy_weight_end=energy_weight_end,
                     ff_loss__force_weight_end=force_weight_end, ff_loss__ramp=ramp,
                     loss_convention=loss_convention)  # fmt: skip
    cfg = load_config(config, overrides)
    inputs = PretrainInputs(data=data, out=out, data_root=state.data_root, overwrite=overwrite,
                            resume=resume, progress=progress)  # fmt: skip
    m = run_pretrain(inputs, cfg)
    if _main_rank():
        console.print(
            f"wrote {out}: held-out energy MAE {m['energy_mae_meV_per_atom']:.4g} meV/atom, "
            f"force MAE {m['force_mae_meV_per_A']:.4g} meV/A ({m['n_val']} frames)"
        )
