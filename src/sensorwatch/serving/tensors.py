"""numpy <-> TensorProto without TensorFlow (the Flink workers never import it).

Writes ``tensor_content`` (raw little-endian bytes), which is what tf.make_tensor_proto
writes for numeric arrays and what TF Serving reads fastest; reads every field form a
client may send (``tensor_content`` or the typed ``*_val`` lists, scalars broadcast).
"""

from __future__ import annotations

import numpy as np

from sensorwatch.serving.protos import pb

_DT = pb.types_pb2
NP_TO_DT = {
    np.dtype("float32"): _DT.DT_FLOAT,
    np.dtype("float64"): _DT.DT_DOUBLE,
    np.dtype("int32"): _DT.DT_INT32,
    np.dtype("int64"): _DT.DT_INT64,
    np.dtype("bool"): _DT.DT_BOOL,
    np.dtype("float16"): _DT.DT_HALF,
    np.dtype("int8"): _DT.DT_INT8,
    np.dtype("uint8"): _DT.DT_UINT8,
    np.dtype("int16"): _DT.DT_INT16,
}
DT_TO_NP = {v: k for k, v in NP_TO_DT.items()}
DT_TO_NP[_DT.DT_STRING] = np.dtype(object)
_VAL_FIELD = {
    _DT.DT_FLOAT: "float_val",
    _DT.DT_DOUBLE: "double_val",
    _DT.DT_INT32: "int_val",
    _DT.DT_INT16: "int_val",
    _DT.DT_INT8: "int_val",
    _DT.DT_UINT8: "int_val",
    _DT.DT_INT64: "int64_val",
    _DT.DT_BOOL: "bool_val",
    _DT.DT_STRING: "string_val",
    _DT.DT_HALF: "half_val",
}


class TensorError(ValueError):
    """A TensorProto that cannot be read as an array; the message says why."""


def dtype_name(dt: int) -> str:
    return _DT.DataType.Name(dt)


def to_tensor_proto(arr) -> pb.tensor_pb2.TensorProto:
    """An array (numeric, bool or strings/bytes) as a TensorProto."""
    a = np.asarray(arr)
    t = pb.tensor_pb2.TensorProto()
    t.tensor_shape.dim.extend(pb.tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in a.shape)
    if a.dtype.kind in "USO":
        t.dtype = _DT.DT_STRING
        t.string_val.extend(x if isinstance(x, bytes) else str(x).encode() for x in a.reshape(-1))
        return t
    if a.dtype not in NP_TO_DT:
        raise TensorError(f"unsupported dtype {a.dtype}")
    t.dtype = NP_TO_DT[a.dtype]
    t.tensor_content = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    return t


def from_tensor_proto(t) -> np.ndarray:
    """A TensorProto as an array; :class:`TensorError` for anything inconsistent."""
    if t.tensor_shape.unknown_rank:
        raise TensorError("tensor has unknown rank")
    shape = tuple(int(d.size) for d in t.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise TensorError(f"tensor shape {list(shape)} has a negative dimension")
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if t.dtype not in DT_TO_NP:
        raise TensorError(f"unsupported dtype {dtype_name(t.dtype) if t.dtype in _DT.DataType.values() else t.dtype}")
    dt = DT_TO_NP[t.dtype]
    if t.dtype == _DT.DT_STRING:
        vals = list(t.string_val)
        if len(vals) == 1 and n > 1:
            vals = vals * n
        if len(vals) != n:
            raise TensorError(f"{len(vals)} string values for shape {list(shape)}")
        out = np.empty(n, dtype=object)
        out[:] = vals
        return out.reshape(shape)
    if t.tensor_content:
        if len(t.tensor_content) != n * dt.itemsize:
            raise TensorError(
                f"tensor_content has {len(t.tensor_content)} bytes; shape {list(shape)} of "
                f"{dtype_name(t.dtype)} needs {n * dt.itemsize}"
            )
        return np.frombuffer(t.tensor_content, dtype=dt.newbyteorder("<")).astype(dt).reshape(shape)
    field = _VAL_FIELD[t.dtype]
    vals = getattr(t, field)
    if t.dtype == _DT.DT_HALF:
        arr = np.array(vals, dtype=np.uint16).view(np.float16)
    else:
        arr = np.array(vals, dtype=dt)
    if arr.size == 1 and n > 1:
        arr = np.full(n, arr[0], dtype=dt)
    if arr.size == 0 and n > 0:
        arr = np.zeros(n, dtype=dt)
    if arr.size != n:
        raise TensorError(f"{arr.size} values in {field} for shape {list(shape)} ({n} elements)")
    return arr.reshape(shape)
