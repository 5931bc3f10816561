"""The source's figures the gate compares each IR with, cached under build/gate-cache.

They are keyed by the source's files and by every file of this package, its texts included: the
figures and the source's answers depend on the eval set, the source side and the criteria (the
answers are cut at MAX_NEW_TOKENS), and a key over the whole folder cannot miss a module that is
added or moved later, as a list of names once missed the one that held MAX_NEW_TOKENS.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovchat_build.checkout import GATE_CACHE
from ovchat_build.recipe import PACKAGE, code_digest

FIDELITY = Path(__file__).resolve().parent


def gate_code(package: Path = PACKAGE) -> str:
    """sha256 over every file of the fidelity package under `package` (the build package's folder)."""
    return code_digest((FIDELITY.name,), package)


def figures_folder(source_key: str) -> Path:
    """Where the figures of the source `source_key` identifies are cached, for this gate's code."""
    return GATE_CACHE / hashlib.sha256(f"{source_key}:{gate_code()}".encode()).hexdigest()[:24]


@dataclass
class SourceFigures:
    """What the gate needs of the source, per eval sequence and prompt; cached between runs."""

    dtype: str
    parameters: int
    argmax: list[np.ndarray]  # per position: the source's most likely next token
    target: list[np.ndarray]  # the log-probability of the token that does come next
    top_ids: list[np.ndarray]  # [positions, TOP_K] the most likely tokens and their log-probs
    top_logprobs: list[np.ndarray]
    eos_ids: list[int]
    answers: list[list[int]] | None = None  # greedy answers, computed only once an IR gets to them

    def save(self, path: Path) -> None:
        """Written aside and renamed into place: a build killed meanwhile leaves no half a cache."""
        work = path.with_name(f".{path.name}-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        arrays = {f"{name}{i}": a for name in ("argmax", "target", "top_ids", "top_logprobs")
                  for i, a in enumerate(getattr(self, name))}  # fmt: skip
        np.savez(work / "figures.npz", **arrays)  # type: ignore[arg-type]
        meta = {
            "dtype": self.dtype,
            "parameters": self.parameters,
            "answers": self.answers,
            "eos_ids": self.eos_ids,
            "count": len(self.argmax),
        }
        (work / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(path, ignore_errors=True)
        work.rename(path)

    @classmethod
    def load(cls, path: Path) -> SourceFigures | None:
        try:
            meta = json.loads((path / "meta.json").read_text())
            with np.load(path / "figures.npz") as data:
                columns = {name: [data[f"{name}{i}"] for i in range(meta["count"])]
                           for name in ("argmax", "target", "top_ids", "top_logprobs")}  # fmt: skip
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
        return cls(
            meta["dtype"], meta["parameters"], eos_ids=meta["eos_ids"], answers=meta["answers"], **columns
        )
