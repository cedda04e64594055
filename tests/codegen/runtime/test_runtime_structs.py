"""Kernels that take their sizes as shape structs and their rows as a tt_row_select_t: a NULL struct
is an argument error (TT_ERR_ARG) whatever the other arguments, and the structs built by the host
bindings give the plain kernels' results (the differential tests of each kernel cover the values)."""

import ctypes

import numpy as np
import pytest

from tintin.codegen import host

STRUCT_KERNELS = [
    "tt_linear_forward_s8", "tt_linear_forward_x4_s8", "tt_linear_backward_input_s8",
    "tt_linear_backward_input_x4_s8", "tt_linear_backward_weight_s32", "tt_linear_backward_weight_rows_s32",
    "tt_bias_backward_rows_s32", "tt_conv2d_backward_weight_rows_s32", "tt_channel_scale_forward_s8",
    "tt_channel_scale_backward_input_s8", "tt_channel_scale_backward_weight_s32",
    "tt_channel_scale_backward_bias_s32", "tt_channel_scale_backward_weight_rows_s32",
]
STRUCTS = (host.CDenseShape, host.CChannelShape, host.CConvShape, host.CRowSelect)


def _arguments(name: str, null_index: int, keep: list):
    """Valid-looking arguments of ``name`` (one-element tensors, shapes of ones) with the struct
    pointer argument ``null_index`` set to NULL."""
    args = []
    for i, t in enumerate(host._PROTOTYPES[name][1]):
        struct = getattr(t, "_type_", None)
        if i == null_index:
            args.append(None)
        elif struct in STRUCTS:
            if struct is host.CRowSelect:
                value = host.CRowSelect(None, 0, 1)
            elif struct is host.CConvShape:
                value = host.CConvShape(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1)
            else:
                value = struct(1, 1, 1)
            keep.append(value)
            args.append(ctypes.byref(value))
        elif t is host.CScale:
            args.append(host.CScale(0, 0, 0))
        elif t is ctypes.POINTER(host.CScale):
            s = host.CScale(0, 0, 0)
            keep.append(s)
            args.append(ctypes.byref(s))
        elif t is ctypes.c_void_p:
            buf = np.zeros(64, np.int64)
            keep.append(buf)
            args.append(buf.ctypes.data)
        else:
            args.append(0)
    return args


def _struct_positions(name: str) -> list[int]:
    return [i for i, t in enumerate(host._PROTOTYPES[name][1]) if getattr(t, "_type_", None) in STRUCTS]


@pytest.mark.parametrize("name", STRUCT_KERNELS)
def test_null_struct_is_an_argument_error(rt, name):
    lib = rt.load()
    positions = _struct_positions(name)
    assert positions, name
    for index in positions:
        keep: list = []
        assert getattr(lib, name)(*_arguments(name, index, keep)) == rt.TT_ERR_ARG, (name, index)
    keep = []
    assert getattr(lib, name)(*_arguments(name, -1, keep)) == rt.TT_OK, name


def test_every_long_list_kernel_is_listed():
    """Every binding that takes a dense/channel shape or a row selection is checked above."""
    users = {name for name, (_, argtypes) in host._PROTOTYPES.items()
             if any(getattr(t, "_type_", None) in (host.CDenseShape, host.CChannelShape, host.CRowSelect)
                    for t in argtypes)}
    assert users == set(STRUCT_KERNELS)
