"""atomcollapse from Python, end to end on data this script makes itself (about 20 s on a CPU).

Rattled copies of a few small molecules, labelled with ASE's EMT potential (energy in eV,
forces in eV/A), are written to an extxyz file, ingested into a store, split by BOOM's property tails (the rarest energies per atom are OOD), and a
small PaiNN is trained from scratch on the energy per atom; then it predicts, evaluates and
reports. Run: ``python examples/quickstart.py [WORKDIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np


def make_frames(path: Path, n: int = 160, seed: int = 0) -> Path:
    """``n`` rattled H/C/N/O molecules with EMT energies and forces, as extxyz."""
    import ase.io
    from ase.build import molecule
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    names = ["CH4", "NH3", "H2O", "C2H6", "CH3OH", "HCN", "C2H4", "H2CO"]
    frames = []
    for k in range(n):
        atoms = molecule(names[k % len(names)])
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return path


def main(work: Path) -> None:
    import atomcollapse as ac

    root = work / "data"
    frames = make_frames(work / "emt.extxyz")
    store = ac.ingest_extxyz([frames], "emt", data_root=root)
    print(f"store {store.name}: {len(store)} structures, targets {store.target_names}")

    split = ac.make_split("emt", work / "split", method="property-tail",
                          target="energy_per_atom", id_frac=0.1, val_frac=0.1, data_root=root)  # fmt: skip
    print("split", split.hash[:12], split.counts())

    cfg = ac.TrainConfig(
        target="energy_per_atom", seed=0, epochs=8, batch_size=16, device="cpu",
        strategy=ac.StrategyConfig("scratch"),
        model=ac.ModelConfig(hidden=16, layers=2, rbf=8, cutoff=4.0),
    )  # fmt: skip
    run = ac.train("emt", work / "split", work / "runs" / "scratch", cfg, data_root=root)
    print(run.metrics[["partition", "n", "mae_report", "report_unit"]].to_string(index=False))

    ood = ac.predict(run, "emt", split=work / "split", partition="ood_test", data_root=root)
    print(f"predicted {len(ood.structures)} ood_test structures, e.g. "
          f"{ood.structures.prediction.iloc[0]:.4f} {ood.structures.unit.iloc[0]}")  # fmt: skip
    ev = ac.evaluate(run, "emt", work / "split", data_root=root)
    print(ev.to_string(index=False))

    rep = ac.report([work / "runs"], out=work / "report", plots=False)
    cols = ["strategy", "target", "unit", "id_mae_mean", "ood_mae_mean", "ood_id_ratio"]
    print(rep.cells[cols].to_string(index=False))
    print(f"report written to {work / 'report'}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="atomcollapse-quickstart-") as tmp:
            main(Path(tmp))
