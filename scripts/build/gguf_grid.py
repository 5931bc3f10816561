"""Carry a GGUF file's own 4-bit grid into the exported IR, so the IR computes what the file computes.

llama.cpp's Q4_1 stores each block of 32 weights as 4-bit codes q with a float16 scale d and a
float16 minimum m: w = d*q + m. An int4 asymmetric export in groups of 32 has the same shape (codes,
a scale and a zero point per block, w = scale * (q - zero_point)), but NNCF stores the zero point
as a 4-bit integer and must round -m/d: every block then shifts by up to d/2 (measured on the
embedded SmolLM2: top-1 agreement with the file 0.68). OpenVINO's CPU plugin decompresses a
float16 zero point just as well, so after the export each such layer gets the file's own codes,
scales and zero points (-m/d): the IR then holds the GGUF's weights (measured: agreement 0.96,
the limit that bf16 inference sets; 0.70 for the int4 sym g128 export).

Runs in the build env (numpy, gguf, openvino).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import openvino as ov
from openvino import opset13 as ops

# HF module names of a llama-style layer -> the GGUF tensor names llama.cpp gives them.
LINEAR_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
IR_WEIGHT = re.compile(r"self\.model\.layers\.(\d+)\.(.+)\.weight$")
GGUF_LINEAR = re.compile(r"blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$")
Q4_1_BLOCK_BYTES = 20  # float16 d, float16 m, 16 bytes of 32 packed 4-bit codes


class GridError(Exception):
    """The GGUF grid cannot be carried into this IR; the message says why."""


@dataclass(frozen=True)
class Q4Block:
    """One Q4_1 tensor unpacked: codes [rows, blocks, 32] and per-block d and m [rows, blocks]."""

    codes: np.ndarray
    scale: np.ndarray
    minimum: np.ndarray

    def rows_reordered(self, heads: int) -> Q4Block:
        """Undo llama.cpp's reordering of q/k rows for rotary embeddings (as transformers does)."""
        return Q4Block(*(_reverse_permute(a, heads) for a in (self.codes, self.scale, self.minimum)))


def grid_type(gguf_path: Path) -> str | None:
    """The grid this module can carry ("Q4_1": every linear weight of the file is Q4_1), else None."""
    try:
        reader = gguf.GGUFReader(gguf_path)
    except Exception:  # not a GGUF file gguf can read: the import step says so in plain words
        return None
    kinds = {t.tensor_type.name for t in reader.tensors if GGUF_LINEAR.search(t.name)}
    return "Q4_1" if kinds == {"Q4_1"} else None


def unpack_q4_1(tensor: Any) -> Q4Block:
    raw = np.asarray(tensor.data)
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, Q4_1_BLOCK_BYTES)
    scale = blocks[:, :, 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    minimum = blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    packed = blocks[:, :, 4:]
    codes = np.concatenate([packed & 0x0F, packed >> 4], axis=-1).astype(np.uint8)
    return Q4Block(codes, scale, minimum)


def _reverse_permute(array: np.ndarray, heads: int) -> np.ndarray:
    rows = array.shape[0]
    return array.reshape(heads, rows // heads // 2, 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)


def apply_grid(gguf_path: Path, ir_dir: Path) -> dict[str, Any]:
    """Replace the int4 asym g32 weights of `ir_dir`'s model with the GGUF's Q4_1 grid, in place."""
    reader = gguf.GGUFReader(gguf_path)
    tensors = {t.name: t for t in reader.tensors}
    config = json.loads((ir_dir / "config.json").read_text())
    heads = {
        "self_attn.q_proj": config["num_attention_heads"],
        "self_attn.k_proj": config.get("num_key_value_heads", config["num_attention_heads"]),
    }
    model = ov.Core().read_model(ir_dir / "openvino_model.xml")
    constants = {
        op.get_friendly_name(): op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"
    }
    replaced = 0
    for name, weight in constants.items():
        match = IR_WEIGHT.match(name)
        if not match or match.group(2) not in LINEAR_NAMES:
            continue
        source = tensors.get(f"blk.{match.group(1)}.{LINEAR_NAMES[match.group(2)]}.weight")
        if source is None or source.tensor_type.name != "Q4_1":
            raise GridError(f"the GGUF has no Q4_1 tensor for {name}")
        block = unpack_q4_1(source)
        if match.group(2) in heads:
            block = block.rows_reordered(heads[match.group(2)])
        _replace(constants, name, weight, block)
        replaced += 1
    if replaced != len([t for t in tensors if GGUF_LINEAR.search(t)]):
        raise GridError(f"found {replaced} int4 layers in the IR for the GGUF's linear weights")
    _save_in_place(model, ir_dir)
    return {"type": "Q4_1", "tensors": replaced, "zero_point": "f16"}


def _replace(constants: dict[str, Any], name: str, weight: Any, block: Q4Block) -> None:
    """Swap the weight's codes, scale and zero point constants for the block's."""
    shape = tuple(weight.get_output_partial_shape(0).to_shape())
    if weight.get_element_type() != ov.Type.u4 or shape != block.codes.shape:
        raise GridError(
            f"{name} is {weight.get_element_type()} {shape}, not u4 {block.codes.shape}: "
            "export with int4 asym groups of 32"
        )
    scale_node, zero_node = constants.get(f"{name}/scale"), constants.get(f"{name}/zero_point")
    if scale_node is None or zero_node is None:
        raise GridError(f"{name} has no scale or zero point constant in the IR")
    flat = block.scale == 0  # a block of equal weights: w = m, coded as 1 * (0 - (-m))
    scale = np.where(flat, 1.0, block.scale)
    zero = -block.minimum / scale
    codes = np.where(flat[..., None], 0, block.codes).astype(np.uint8)
    _swap(weight, ops.constant(codes, dtype=ov.Type.u4), name)
    _swap(scale_node, ops.constant(scale[..., None].astype(np.float16)), f"{name}/scale")
    # The zero point reached the Subtract through a Convert(u4 -> f16); the new one is f16 already.
    [convert] = [target.get_node() for target in zero_node.output(0).get_target_inputs()]
    _swap(convert, ops.constant(zero[..., None].astype(np.float16)), f"{name}/zero_point")


def _swap(old: Any, new: Any, name: str) -> None:
    new.set_friendly_name(name)
    old.output(0).replace(new.output(0))


def _save_in_place(model: ov.Model, ir_dir: Path) -> None:
    """Write the model next to the old files, then rename over them (the old .bin is still mapped)."""
    temporary = ir_dir / ".grid_model.xml"
    ov.save_model(model, temporary, compress_to_fp16=False)
    del model
    os.replace(temporary.with_suffix(".bin"), ir_dir / "openvino_model.bin")
    os.replace(temporary, ir_dir / "openvino_model.xml")
