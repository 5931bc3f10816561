"""llama.cpp's block formats as codes, group scales and zero points: w = scale * (code - zero).

Each GGUF tensor type maps onto a weight layout OpenVINO's CPU plugin decompresses inside its
MatMul (codes -> Convert -> [Subtract zero] -> Multiply scale -> Reshape), without rounding a code:
- Q4_0 d*(q-8): i4 codes q-8, f16 scale, no zero point (NNCF's int4 sym layout), groups of 32.
- Q8_0 d*q, Q5_0 d*(q-16): i8 codes, f16 scale, no zero point, groups of 32.
- Q4_1, Q5_1 d*q+m: u4 / u8 codes, f16 scale d, f32 zero point -m/d, groups of 32.
- Q4_K, Q5_K (super-blocks of 8 sub-blocks of 32) (d*sc)*q - dmin*m: u4 / u8 codes, scale d*sc
  and zero point dmin*m/(d*sc) in f32: d*sc is an f16 times a 6-bit integer and needs up to 17
  mantissa bits, so it does not fit f16.
- Q6_K (16 sub-blocks of 16) (d*sc)*(q-32): i8 codes q-32, f32 scale d*sc (sc is an int8), groups of 16.
Codes and scales are exact; a zero point -m/d is exact to f32 rounding (unit-tested against
gguf.quants.dequantize). Unpacking goes through gguf's own bit layouts.

Runs in the build env (numpy, gguf).
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import Q4_K as Q4K
from gguf.quants import QK_K

# code element type, group size, per-type block size in weights (GGML_QUANT_SIZES)
LAYOUTS: dict[str, tuple[str, int]] = {
    "Q4_0": ("i4", 32),
    "Q4_1": ("u4", 32),
    "Q5_0": ("i8", 32),
    "Q5_1": ("u8", 32),
    "Q8_0": ("i8", 32),
    "Q4_K": ("u4", 32),
    "Q5_K": ("u8", 32),
    "Q6_K": ("i8", 16),
}
FLOATS = ("F32", "F16", "BF16")  # carried as they are


@dataclass(frozen=True)
class Grid:
    """One tensor's weights as codes [rows, groups, group], scale and zero [rows, groups] (zero None: 0)."""

    kind: str
    codes: np.ndarray
    scale: np.ndarray
    zero: np.ndarray | None

    @property
    def code_type(self) -> str:
        return LAYOUTS[self.kind][0]

    def weights(self) -> np.ndarray:
        """What the IR's decompression computes, in float32: [rows, columns]."""
        codes = self.codes.astype(np.float32)
        if self.zero is not None:
            codes = codes - self.zero[..., None]
        weights: np.ndarray = (codes * self.scale[..., None]).reshape(self.codes.shape[0], -1)
        return weights

    def rows_reordered(self, heads: int) -> Grid:
        """Undo llama.cpp's reordering of q/k rows for rotary embeddings (as transformers does)."""
        zero = None if self.zero is None else reverse_permute(self.zero, heads)
        return Grid(self.kind, reverse_permute(self.codes, heads), reverse_permute(self.scale, heads), zero)


def reverse_permute(array: np.ndarray, heads: int) -> np.ndarray:
    rows = array.shape[0]
    return array.reshape(heads, rows // heads // 2, 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)


def _f16(raw: np.ndarray) -> np.ndarray:
    return raw.copy().view(np.float16)[..., 0].astype(np.float32)


def _nibbles(packed: np.ndarray) -> np.ndarray:
    """32 4-bit codes from 16 bytes: the low nibbles are codes 0..15, the high ones 16..31."""
    return np.concatenate([packed & 0x0F, packed >> 4], axis=-1)


def _high_bits(qh: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1: bit j of the little-endian u32 is code j's fifth bit."""
    return np.unpackbits(qh, axis=-1, bitorder="little")


def _with_minimum(kind: str, codes: np.ndarray, scale: np.ndarray, minimum: np.ndarray) -> Grid:
    """w = scale*code + minimum as scale*(code - zero); a block of equal weights (scale 0) becomes
    1*(0 - (-minimum))."""
    flat = scale == 0
    scale = np.where(flat, np.float32(1), scale)
    codes = np.where(flat[..., None], 0, codes).astype(np.uint8)
    return Grid(kind, codes, scale, (-minimum / scale).astype(np.float32))


def unpack(kind: str, raw: np.ndarray) -> Grid:
    """A tensor's raw blocks ([rows, bytes]) as a Grid; KeyError for a type with no layout."""
    rows = raw.shape[0]
    group = LAYOUTS[kind][1]
    size = gguf.GGML_QUANT_SIZES[T[kind]][1]
    blocks = raw.reshape(rows, -1, size)
    if kind in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"):
        d = _f16(blocks[..., 0:2])
        if kind == "Q8_0":
            return Grid(kind, blocks[..., 2:].copy().view(np.int8), d, None)
        if kind == "Q4_0":
            return Grid(kind, _nibbles(blocks[..., 2:]).astype(np.int8) - 8, d, None)
        if kind == "Q5_0":
            codes = _nibbles(blocks[..., 6:]) | (_high_bits(blocks[..., 2:6]) << 4)
            return Grid(kind, codes.astype(np.int8) - 16, d, None)
        m = _f16(blocks[..., 2:4])
        if kind == "Q4_1":
            return _with_minimum(kind, _nibbles(blocks[..., 4:]), d, m)
        return _with_minimum(kind, _nibbles(blocks[..., 8:]) | (_high_bits(blocks[..., 4:8]) << 4), d, m)
    if kind in ("Q4_K", "Q5_K"):
        d, dmin = _f16(blocks[..., 0:2]), _f16(blocks[..., 2:4])
        sc, m = (a.reshape(rows, -1, 8) for a in Q4K.get_scale_min(blocks[..., 4:16].reshape(-1, 12)))
        scale = (d[..., None] * sc.astype(np.float32)).reshape(rows, -1)
        minimum = -(dmin[..., None] * m.astype(np.float32)).reshape(rows, -1)
        if kind == "Q4_K":  # 4 x 32 bytes, each 32 bytes: low nibbles sub-block 2i, high 2i+1
            packed = blocks[..., 16:].reshape(rows, -1, 4, 1, 32)
            low = np.concatenate([packed & 0x0F, packed >> 4], axis=-2)
            return _with_minimum(kind, low.reshape(rows, -1, 32), scale, minimum)
        qh = blocks[..., 16:48].reshape(rows, -1, 1, 32)
        packed = blocks[..., 48:].reshape(rows, -1, 4, 1, 32)
        low = np.concatenate([packed & 0x0F, packed >> 4], axis=-2).reshape(rows, -1, 8, 32)
        high = (qh >> np.arange(8, dtype=np.uint8).reshape(1, 1, 8, 1)) & 1
        return _with_minimum(kind, (low | (high << 4)).reshape(rows, -1, 32), scale, minimum)
    if kind == "Q6_K":
        ql = blocks[..., : QK_K // 2].reshape(rows, -1, 2, 1, 64)
        qh = blocks[..., QK_K // 2 : QK_K // 2 + QK_K // 4].reshape(rows, -1, 2, 1, 32)
        sc = blocks[..., 192:208].copy().view(np.int8).astype(np.float32)
        d = _f16(blocks[..., 208:210])
        low = np.concatenate([ql & 0x0F, ql >> 4], axis=-2).reshape(rows, -1, 2, 4, 32)
        high = (qh >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 1, 4, 1)) & 3
        codes = (low | (high << 4)).astype(np.int8) - 32
        scale = (d[..., None] * sc).reshape(rows, -1)
        return Grid(kind, codes.reshape(rows, -1, group), scale, None)
    raise KeyError(kind)
