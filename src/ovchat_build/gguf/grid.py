"""Carry a GGUF file's own 4-bit grid into the exported IR, so the IR computes what the file computes.

llama.cpp's Q4_1 stores each block of 32 weights as 4-bit codes q with a float16 scale d and a
float16 minimum m: w = d*q + m. An int4 asymmetric export in groups of 32 has the same shape (codes,
a scale and a zero point per block, w = scale * (q - zero_point)), but NNCF stores the zero point
as a 4-bit integer and must round -m/d: every block then shifts by up to d/2 (measured on the
embedded SmolLM2: top-1 agreement with the file 0.68). OpenVINO's CPU plugin decompresses a
float16 zero point just as well, so after the export each such layer gets the file's own codes,
scales and zero points (-m/d): the IR then holds the GGUF's weights (measured: agreement 0.96,
the limit that bf16 inference sets; 0.70 for the int4 sym g128 export).

Every other file (Q8_0, Q4_0, Q5_x, the K-quants and the per-tensor mixes llama-quantize writes)
is exported unquantized (fp32) and each weight constant is replaced by a decompression subgraph of
the file's own codes, scales and zero points (blocks.py): codes -> Convert -> [Subtract zero
point] -> Multiply scale -> Reshape, the pattern NNCF emits and the CPU plugin folds into its
MatMul and Gather. F16/BF16 tensors stay 16-bit (Constant -> Convert). Types with no such layout
(IQ*, Q2_K, Q3_K, TQ*) are refused at planning time.

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

from ovchat_build.gguf.archs import Architecture, ArchitectureError, file_architecture, read_gguf
from ovchat_build.gguf.blocks import FLOATS, LAYOUTS, Grid, unpack
from ovchat_build.gguf.blocks import reverse_permute as _reverse_permute

IR_WEIGHT = re.compile(r"self\.model\.layers\.(\d+)\.(.+)\.weight$")
GGUF_WEIGHT = re.compile(r"blk\.(\d+)\.(\w+)\.weight$")
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
    """How the file's grid is carried: "Q4_1" (every linear weight is Q4_1: an int4 asym g32 export
    with the grid written over it, as the embedded model has always been built), "blocks" (every
    tensor's own format into an fp32 export), or None (unreadable, or a type with no layout)."""
    types = tensor_types(gguf_path)
    if types is None or uncarried(types):
        return None
    try:
        arch = file_architecture(read_gguf(gguf_path), gguf_path.name)
    except ArchitectureError:
        return None  # the import step says why, in one line
    linear = {kind for name, kind in types.items() if _linear_kind(name, arch)}
    return "Q4_1" if linear == {"Q4_1"} else "blocks"


def _linear_kind(gguf_name: str, arch: Architecture) -> str | None:
    """A layer's linear weight kind (attn_q, attn_qkv, ffn_up, ...) for `arch`, else None."""
    match = GGUF_WEIGHT.fullmatch(gguf_name)
    return match.group(2) if match and match.group(2) in arch.linear else None


def _reordered_heads(config: dict[str, Any], arch: Architecture) -> dict[str, int]:
    """The HF modules whose rows llama.cpp reordered for `arch`, with their head counts."""
    if not arch.reordered:
        return {}
    heads = config["num_attention_heads"]
    return {"self_attn.q_proj": heads, "self_attn.k_proj": config.get("num_key_value_heads", heads)}


def tensor_types(gguf_path: Path) -> dict[str, str] | None:
    """Each tensor's GGML type name, or None for a file gguf cannot read (the import step says why)."""
    try:
        reader = read_gguf(gguf_path)
    except Exception:
        return None
    return {t.name: t.tensor_type.name for t in reader.tensors}


def uncarried(types: dict[str, str]) -> dict[str, int]:
    """The types with no exact layout in the IR (IQ*, Q2_K, Q3_K, TQ*...), with their tensor counts."""
    counts: dict[str, int] = {}
    for kind in types.values():
        if kind not in LAYOUTS and kind not in FLOATS:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def unpack_q4_1(tensor: Any) -> Q4Block:
    raw = np.asarray(tensor.data)
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, Q4_1_BLOCK_BYTES)
    scale = blocks[:, :, 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    minimum = blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    packed = blocks[:, :, 4:]
    codes = np.concatenate([packed & 0x0F, packed >> 4], axis=-1).astype(np.uint8)
    return Q4Block(codes, scale, minimum)


def apply_grid(gguf_path: Path, ir_dir: Path) -> dict[str, Any]:
    """Replace the int4 asym g32 weights of `ir_dir`'s model with the GGUF's Q4_1 grid, in place."""
    reader = read_gguf(gguf_path)
    arch = _architecture(reader, gguf_path)
    tensors = {t.name: t for t in reader.tensors}
    heads = _reordered_heads(json.loads((ir_dir / "config.json").read_text()), arch)
    kinds = {module: kind for kind, module in arch.linear.items()}
    model = ov.Core().read_model(ir_dir / "openvino_model.xml")
    constants = {
        op.get_friendly_name(): op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"
    }
    replaced = 0
    for name, weight in constants.items():
        match = IR_WEIGHT.match(name)
        if not match or match.group(2) not in kinds:
            continue
        source = tensors.get(f"blk.{match.group(1)}.{kinds[match.group(2)]}.weight")
        if source is None or source.tensor_type.name != "Q4_1":
            raise GridError(f"the GGUF has no Q4_1 tensor for {name}")
        block = unpack_q4_1(source)
        if match.group(2) in heads:
            block = block.rows_reordered(heads[match.group(2)])
        _replace(constants, name, weight, block)
        replaced += 1
    if replaced != len([t for t in tensors if _linear_kind(t, arch)]):
        raise GridError(f"found {replaced} int4 layers in the IR for the GGUF's linear weights")
    _save_in_place(model, ir_dir)
    return {"type": "Q4_1", "tensors": replaced, "zero_point": "f16"}


def _architecture(reader: gguf.GGUFReader, gguf_path: Path) -> Architecture:
    try:
        return file_architecture(reader, gguf_path.name)
    except ArchitectureError as exc:
        raise GridError(str(exc)) from None


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


# GGUF tensor names of the embeddings and the output layer -> the IR constant names optimum gives them.
IR_NAMES = {"token_embd.weight": "self.model.embed_tokens.weight", "output.weight": "self.lm_head.weight"}
CODE_TYPES = {"i4": ov.Type.i4, "u4": ov.Type.u4, "i8": ov.Type.i8, "u8": ov.Type.u8}
# Tolerance of the check against gguf.quants.dequantize, relative to the tensor's largest weight: the
# formats with a minimum compute d*(q - m/d) instead of d*q + m, which differs by a float32 rounding
# (measured: at most 2.4e-7 at |w| <= 6, i.e. 2^-24 of the largest weight); the others are equal.
TOLERANCE = 2.0**-21


def ir_name(gguf_name: str, arch: Architecture) -> str | None:
    """The IR constant that holds a GGUF weight tensor (None: not a weight the IR has as a constant)."""
    if gguf_name in IR_NAMES:
        return IR_NAMES[gguf_name]
    kind = _linear_kind(gguf_name, arch)
    if kind is None:
        return None
    return f"self.model.layers.{gguf_name.split('.')[1]}.{arch.linear[kind]}.weight"


def carry_blocks(gguf_path: Path, ir_dir: Path) -> dict[str, Any]:
    """Replace every float32 weight of `ir_dir`'s unquantized model with the GGUF tensor's own
    format (codes, scales, zero points, or 16-bit floats), checked against gguf's dequantizer."""
    reader = read_gguf(gguf_path)
    arch = _architecture(reader, gguf_path)
    heads = _reordered_heads(json.loads((ir_dir / "config.json").read_text()), arch)
    model = ov.Core().read_model(ir_dir / "openvino_model.xml")
    constants = {
        op.get_friendly_name(): op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"
    }
    counts: dict[str, int] = {}
    worst, f32_scales = 0.0, 0
    for tensor in reader.tensors:
        kind, name = tensor.tensor_type.name, ir_name(tensor.name, arch)
        if name is None or kind == "F32":
            continue
        weight = constants.get(name)
        if weight is None:
            raise GridError(f"the IR has no constant {name} for the GGUF's {tensor.name}")
        raw = np.asarray(tensor.data)
        module = IR_WEIGHT.match(name)
        reorder = heads.get(module.group(2)) if module else None
        if kind in FLOATS:
            node = _float_weight(np.asarray(raw.reshape(raw.shape[0], -1)), kind, reorder)
        else:
            grid = unpack(kind, raw)
            grid = grid.rows_reordered(reorder) if reorder else grid
            worst = max(worst, _check(grid, raw, tensor.tensor_type, reorder, tensor.name))
            node, wide = _decompression(grid, name)
            f32_scales += wide
        _check_shape(weight, node, name)
        weight.output(0).replace(node.output(0))
        counts[kind] = counts.get(kind, 0) + 1
    _save_in_place(model, ir_dir)
    return {
        "type": "+".join(sorted(counts)),
        "tensors": sum(counts.values()),
        "per_type": counts,
        "f32_scales": f32_scales,
        "max_error_vs_dequantize": worst,
    }


def _float_weight(values: np.ndarray, kind: str, heads: int | None) -> Any:
    """A 16-bit tensor kept 16-bit: Constant -> Convert(f32), as an fp16 IR holds it."""
    if kind == "BF16":
        values = (values.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    values = reverse_rows(values, heads)
    if kind == "F16":
        return ops.convert(ops.constant(values.view(np.float16)), ov.Type.f32)
    return ops.convert(ops.constant(values, dtype=ov.Type.bf16), ov.Type.f32)


def reverse_rows(values: np.ndarray, heads: int | None) -> np.ndarray:
    return _reverse_permute(values, heads) if heads else values


def _check(grid: Grid, raw: np.ndarray, qtype: Any, heads: int | None, name: str) -> float:
    """The codes, scales and zero points compute the tensor gguf's dequantizer computes."""
    reference = reverse_rows(gguf.quants.dequantize(raw, qtype).reshape(raw.shape[0], -1), heads)
    error = float(np.abs(grid.weights() - reference).max())
    if error > TOLERANCE * float(np.abs(reference).max()):
        raise GridError(f"{name}: the carried {grid.kind} grid differs from the file's weights by {error:g}")
    return error


def _decompression(grid: Grid, name: str) -> tuple[Any, bool]:
    """codes -> Convert -> [Subtract zero point] -> Multiply scale -> Reshape, in float32 (whether the
    scales had to stay float32: a K-quant's d*sc does not fit float16)."""
    codes = ops.constant(grid.codes, dtype=CODE_TYPES[grid.code_type], name=name)
    values = ops.convert(codes, ov.Type.f32)
    if grid.zero is not None:
        values = ops.subtract(values, ops.constant(grid.zero[..., None], name=f"{name}/zero_point"))
    scale = grid.scale[..., None]
    narrow = np.array_equal(scale.astype(np.float16).astype(np.float32), scale)
    if narrow:
        scale_node = ops.convert(ops.constant(scale.astype(np.float16), name=f"{name}/scale"), ov.Type.f32)
    else:
        scale_node = ops.constant(scale.astype(np.float32), name=f"{name}/scale")
    values = ops.multiply(values, scale_node)
    shape = ops.constant(np.array([grid.codes.shape[0], -1], dtype=np.int64))
    return ops.reshape(values, shape, special_zero=False), not narrow


def _check_shape(weight: Any, node: Any, name: str) -> None:
    old = tuple(weight.get_output_partial_shape(0).to_shape())
    new = tuple(node.get_output_partial_shape(0).to_shape())
    if weight.get_element_type() != ov.Type.f32 or old != new:
        raise GridError(f"{name} is {weight.get_element_type()} {old} in the IR, the GGUF's is {new}")
