"""Builders of tiny QM9 files in all three formats, from the same four real molecules.

Values are those of dsgdb9nsd 1 (methane), 3 (water), 4 (acetylene) and 5 (HCN) as published;
a few small coordinates are written with Mathematica's ``*^`` exponent as the original files do.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pandas as pd

PROPERTY_COLUMNS = ["A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve",
                    "u0", "u", "h", "g", "cv"]  # fmt: skip

MOLECULES: list[dict] = [
    {
        "index": 1,
        "atoms": [("C", "-0.0126981359", "1.0858041578", "0.0080009958"),
                  ("H", "0.002150416", "-0.0060313176", "0.0019761204"),
                  ("H", "1.0117308433", "1.4637511618", "2.765748*^-4"),
                  ("H", "-0.540815069", "1.4475266138", "-0.8766437152"),
                  ("H", "-0.5238136345", "1.4379326443", "0.9063972942")],
        "props": "157.7118 157.70997 157.70699 0. 13.21 -0.3877 0.1171 0.5048 35.3641 0.044749 "
                 "-40.47893 -40.476062 -40.475117 -40.498597 6.469",
        "smiles": ("C", "C"), "inchi": ("InChI=1S/CH4/h1H4", "InChI=1S/CH4/h1H4"),
        "bonds": [(0, 1, 1), (0, 2, 1), (0, 3, 1), (0, 4, 1)],
    },
    {
        "index": 3,
        "atoms": [("O", "-0.0343604951", "0.9775395708", "0.0076015923"),
                  ("H", "0.0647664923", "0.0205721989", "1.5346341*^-3"),
                  ("H", "0.8717903737", "1.3007924048", "6.931336*^-4")],
        "props": "799.58812 437.90386 282.94545 1.8511 6.31 -0.2928 0.0687 0.3615 19.0002 "
                 "0.021375 -76.404702 -76.401867 -76.400922 -76.422349 6.002",
        "smiles": ("O", "O"), "inchi": ("InChI=1S/H2O/h1H2", "InChI=1S/H2O/h1H2"),
        "bonds": [(0, 1, 1), (0, 2, 1)],
    },
    {
        "index": 4,
        "atoms": [("C", "0.5995394918", "0.", "1."), ("C", "-0.5995394918", "0.", "1."),
                  ("H", "-1.6616385861", "0.", "1."), ("H", "1.6616385861", "0.", "1.")],
        "props": "0. 35.6100361 35.6100361 0. 16.28 -0.2845 0.0506 0.3351 59.5248 0.026841 "
                 "-77.308427 -77.305527 -77.304583 -77.327429 8.574",
        "smiles": ("C#C", "C#C"),
        "inchi": ("InChI=1S/C2H2/c1-2/h1-2H", "InChI=1S/C2H2/c1-2/h1-2H"),
        "bonds": [(0, 1, 3), (1, 2, 1), (0, 3, 1)],
    },
    {
        "index": 5,
        "atoms": [("C", "-0.0133239314", "1.1324657151", "0.0082758861"),
                  ("N", "0.0023107217", "-0.0191585871", "0.0019287305"),
                  ("H", "-0.0278026991", "2.1989492963", "0.0141537903")],
        "props": "0. 44.593883 44.593883 2.8937 12.99 -0.3604 0.0191 0.3796 48.7476 0.016601 "
                 "-93.411888 -93.40937 -93.408425 -93.431246 6.278",
        "smiles": ("C#N", "C#N"),
        "inchi": ("InChI=1S/CHN/c1-2/h1H", "InChI=1S/CHN/c1-2/h1H"),
        "bonds": [(0, 1, 3), (0, 2, 1)],
    },
]  # fmt: skip


def value(token: str) -> float:
    return float(token.replace("*^", "e"))


def xyz_name(index: int) -> str:
    return f"dsgdb9nsd_{index:06d}.xyz"


def xyz_text(mol: dict) -> str:
    """One molecule in the original xyz layout (tab-separated, trailing tab on line 2)."""
    n = len(mol["atoms"])
    lines = [str(n), "\t".join(["gdb", str(mol["index"]), *mol["props"].split()]) + "\t"]
    lines += ["\t".join([s, x, y, z, "0.0"]) for s, x, y, z in mol["atoms"]]
    lines.append("\t".join(["1000.0"] * max(1, 3 * n - 6)))
    lines.append("\t".join(mol["smiles"]) + "\t")
    lines.append("\t".join(mol["inchi"]))
    return "\n".join(lines) + "\n"


def xyz_texts(mols: list[dict] = MOLECULES) -> dict[str, str]:
    return {xyz_name(m["index"]): xyz_text(m) for m in mols}


def write_xyz_folder(folder: Path, texts: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (texts or xyz_texts()).items():
        (folder / name).write_text(text)
    return folder


def write_tarball(path: Path, texts: dict[str, str] | None = None, mode: str = "w:bz2") -> Path:
    """A tar archive of xyz members (bz2 like the original unless ``mode`` says otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, text in (texts or xyz_texts()).items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def qm9pack_rows(mols: list[dict] = MOLECULES) -> list[dict]:
    rows = []
    for m in mols:
        p = [value(t) for t in m["props"].split()]
        syms = [a[0] for a in m["atoms"]]
        xyz = ",".join("[" + ",".join(repr(value(t)) for t in a[1:]) + "]" for a in m["atoms"])
        rows.append({
            "XYZ_file": xyz_name(m["index"]), "Index": m["index"], "SMILES": m["smiles"][0],
            "InChi": m["inchi"][0], "N_atoms": len(syms), "Stoichiometry": "[0,0,0,0,0]",
            "Elements": "[" + ",".join(f"'{s}'" for s in syms) + "]", "XYZ_Ang": f"[{xyz}]",
            "Mulliken_pop": "[" + ",".join(["0.0"] * len(syms)) + "]", "Harmonic_Freq_cmi": "[1.0]",
            "RotA_GHz": p[0], "RotB_GHz": p[1], "RotC_GHz": p[2], "Dipole_debye": p[3],
            "Polarizability_bohr3": p[4], "HOMO_au": p[5], "LUMO_au": p[6],
            "HOMO_LUMO_gap_au": p[7], "R2_bohr2": p[8], "ZPVE_au": p[9],
            "InternalEnergy_0K_au": p[10], "InternalEnergy_298K_au": p[11],
            "Enthalphy_298K_au": p[12], "GibbsFreeEnergy_298K_au": p[13],
            "Heatcapacity_Cv_cal_mol_K": p[14],
        })  # fmt: skip
    return rows


def write_qm9pack_csv(path: Path, rows: list[dict] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows if rows is not None else qm9pack_rows()).to_csv(path, index=False)
    return path


def write_pyg_raw(folder: Path, mols: list[dict] = MOLECULES, csv: bool = True) -> Path:
    """``gdb9.sdf`` (made with RDKit, 4-decimal positions) and ``gdb9.sdf.csv`` in raw units."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    folder.mkdir(parents=True, exist_ok=True)
    sdf = folder / "gdb9.sdf"
    order = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    with Chem.SDWriter(str(sdf)) as writer:
        for m in mols:
            rw = Chem.RWMol()
            for a in m["atoms"]:
                rw.AddAtom(Chem.Atom(a[0]))
            for i, j, k in m["bonds"]:
                rw.AddBond(i, j, order[k])
            conf = Chem.Conformer(len(m["atoms"]))
            for i, a in enumerate(m["atoms"]):
                conf.SetAtomPosition(i, Point3D(*(value(t) for t in a[1:])))
            conf.Set3D(True)
            mol = rw.GetMol()
            Chem.SanitizeMol(mol)
            mol.AddConformer(conf, assignId=True)
            mol.SetProp("_Name", f"gdb_{m['index']}")
            writer.write(mol)
    if csv:
        names = ["mol_id", *PROPERTY_COLUMNS[:11], "u298", "h298", "g298", "cv"]
        extra = ["u0_atom", "u298_atom", "h298_atom", "g298_atom"]
        atomisation = [-1.0] * 4  # kcal/mol in the real file; not read
        rows = [[f"gdb_{m['index']}", *map(value, m["props"].split()), *atomisation] for m in mols]
        pd.DataFrame(rows, columns=names + extra).to_csv(folder / "gdb9.sdf.csv", index=False)
    return sdf


def write_uncharacterized(path: Path, indices: list[int]) -> Path:
    """A list in the layout of figshare's ``uncharacterized.txt`` (header, rules, rows)."""
    rule = "=" * 120
    rows = [f"{i:>8}{'CC':>40}{'CC':>45}{'CC':>45}{1.5:>20.6f}" for i in indices]
    text = "\n".join([
        "", "List of molecules among the 133885 GDB9 molecules for which the Corina generated",
        "Cartesian coordinates and the B3LYP/6-31G(2df,p) equilibrium geometry lead to",
        "different SMILES and InChI strings.", "", rule,
        "#   Index     GDB17 SMILES     SMILES for B3LYP XYZ     SMILES for Corina XYZ     D_IJ",
        rule, *rows, rule, "",
    ])  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
