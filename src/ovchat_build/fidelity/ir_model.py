"""The exported IR run directly with OpenVINO on CPU, teacher-forced and greedy, for the fidelity gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from ovchat_build.fidelity.criteria import MAX_NEW_TOKENS, FidelityError


class IRModel:
    """The exported stateful IR run directly with OpenVINO on CPU, as ovchat's runtime would."""

    def __init__(self, ir_dir: Path, precision: str | None = None) -> None:
        core = ov.Core()
        model = core.read_model(ir_dir / "openvino_model.xml")
        names = {name for port in model.inputs for name in port.get_names()}
        missing = {"input_ids", "attention_mask", "position_ids", "beam_idx"} - names
        if missing:
            raise FidelityError(
                f"{ir_dir} is not a stateful text-generation IR (no {', '.join(sorted(missing))})"
            )
        config = {"INFERENCE_PRECISION_HINT": precision} if precision else {}
        compiled = core.compile_model(model, "CPU", config)
        self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.request = compiled.create_infer_request()

    def _step(self, ids: list[int], past: int) -> np.ndarray:
        n = len(ids)
        self.request.infer({
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, past + n), dtype=np.int64),
            "position_ids": np.arange(past, past + n, dtype=np.int64)[None, :],
            "beam_idx": np.zeros(1, dtype=np.int32),
        })  # fmt: skip
        logits: np.ndarray = self.request.get_tensor("logits").data[0].copy()
        return logits

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits for every position of one sequence, from an empty KV cache."""
        self.request.reset_state()
        return self._step(ids, 0)

    def greedy(self, prompt: list[int], eos_ids: set[int]) -> list[int]:
        out = [int(self.logits(prompt)[-1].argmax())]
        while out[-1] not in eos_ids and len(out) < MAX_NEW_TOKENS:
            out.append(int(self._step(out[-1:], len(prompt) + len(out) - 1)[-1].argmax()))
        return out
