"""Native building blocks of the index's numba kernels: a population count that compiles to one
instruction, and a prefetch hint (:mod:`matcher.index.mih`, :mod:`matcher.index.descriptor_kernels`).

Imported only by those kernel modules (numba is heavy: opening an index does not import it).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["ctpop", "popcount64", "prefetch1", "prefetch2"]


@intrinsic
def ctpop(typingctx, x):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """LLVM's population count (one POPCNT instruction where the CPU has it)."""
    signature = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return signature, codegen


def _prefetch_codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """``llvm.prefetch`` (read, keep in all cache levels) of the element ``args[1:]`` of array ``args[0]``."""
    array_type = sig.args[0]
    array = context.make_array(array_type)(context, builder, args[0])
    indices = [builder.sext(i, ir.IntType(64)) if i.type.width < 64 else i for i in args[1:]]
    pointer = cgutils.get_item_pointer2(
        context,
        builder,
        data=array.data,
        shape=cgutils.unpack_tuple(builder, array.shape),
        strides=cgutils.unpack_tuple(builder, array.strides),
        layout=array_type.layout,
        inds=indices,
        wraparound=False,
    )
    byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
    i32 = ir.IntType(32)
    function = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer.type, i32, i32, i32]), "llvm.prefetch.p0"
    )
    builder.call(function, [byte_pointer, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
    return context.get_dummy_value()


@intrinsic
def prefetch1(typingctx, array, i):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Ask the processor to start loading ``array[i]`` (no effect on results)."""
    return types.void(array, i), _prefetch_codegen


@intrinsic
def prefetch2(typingctx, array, i, j):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Ask the processor to start loading ``array[i, j]`` (no effect on results)."""
    return types.void(array, i, j), _prefetch_codegen


@njit(cache=True, nogil=True, inline="always")
def popcount64(x: np.uint64) -> np.int64:  # pragma: no cover - compiled
    """The number of set bits of ``x``."""
    return np.int64(ctpop(np.uint64(x)))  # type: ignore[call-arg]
