"""Memory bombs as users were seen to hand them to rnnbench (issue 25): tiny files that declare,
or inflate to, gigabytes. Each generator writes `path` in a second or less.

A zip member that inflates to gigabytes is written by hand: deflate's output for a run of one
byte repeats once the compressor is flushed (Z_FULL_FLUSH resets it), so the block is made
once and written as often as the size needs. Its CRC is left 0: zipfile checks a member's CRC
only after inflating all of it, so to a reader without a size check it is the same bomb."""

from __future__ import annotations

import struct
import zipfile
import zlib

import numpy as np

from tests import onnx_user_files

GiB = 2**30
CHUNK = 2**20


def deflated(prefix: bytes, filler: bytes, size: int) -> bytes:
    """Raw deflate of `prefix` followed by `filler` bytes up to `size` in all."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    rest = size - len(prefix)
    chunk = filler * CHUNK
    if rest < 2 * CHUNK:
        return compressor.compress(prefix + filler * rest) + compressor.flush()
    head = compressor.compress(prefix) + compressor.compress(chunk)
    head += compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    count, tail = divmod(rest, CHUNK)
    tail_bytes = compressor.compress(filler * tail) + compressor.flush()
    return head + block * (count - 1) + tail_bytes


def write_zip(path, members: list[tuple[str, bytes, bytes, int]]) -> None:
    """A zip of deflated members, each (name, prefix, filler, inflated size); a member with
    size == len(prefix) is an ordinary one, CRC and all."""
    body, directory = bytearray(), bytearray()
    for name, prefix, filler, size in members:
        data = deflated(prefix, filler, size)
        crc = zlib.crc32(prefix) if size == len(prefix) else 0
        encoded, offset = name.encode(), len(body)
        fields = (20, 0, 8, 0, 0, crc, len(data), size, len(encoded), 0)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + encoded + data
        central = (20, *fields, 0, 0, 0, 0, offset)
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, *central) + encoded
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), len(body), 0
    )
    with open(path, "wb") as handle:
        handle.write(bytes(body) + bytes(directory) + end)


def npz_bomb(path, name: str, shape, dtype="float32") -> None:
    """An .npz whose one array, of `shape`, is zeros deflated: a few MB on disk."""
    header = npy_header(shape, np.dtype(dtype))
    size = len(header) + int(np.prod(shape)) * np.dtype(dtype).itemsize
    write_zip(path, [(f"{name}.npy", header, b"\0", size)])


def npz_lying_header(path, name: str, shape, dtype="float32") -> None:
    """An .npz whose array header declares `shape` over a member of 16 bytes of data."""
    header = npy_header(shape, np.dtype(dtype))
    data = header + bytes(16)
    write_zip(path, [(f"{name}.npy", data, b"", len(data))])


def npy_header(shape, dtype) -> bytes:
    """A .npy header (version 1.0) declaring `shape` of `dtype`."""
    import io

    stream = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
    np.lib.format.write_array_header_1_0(stream, {**header, "shape": tuple(shape)})
    return stream.getvalue()


def keras_with_config(source, path, config: bytes, size: int | None = None) -> None:
    """A copy of the .keras `source` whose config.json is `config`, padded with spaces (JSON
    allows them) to `size` bytes inflated."""
    with zipfile.ZipFile(source) as archive:
        members = [
            (info.filename, archive.read(info), b"", info.file_size)
            for info in archive.infolist()
            if info.filename != "config.json"
        ]
    members.append(("config.json", config, b" ", size or len(config)))
    write_zip(path, members)


def _lstm_graph(nodes, inits, inputs=None, outputs=None, I=3, H=4, opset=17):
    """A graph around one LSTM node reading X, W, R, B (W may come from `nodes`)."""
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    inputs = inputs or [helper.make_tensor_value_info("X", f32, ["T", "B", I])]
    outputs = outputs or [helper.make_tensor_value_info("Y_h", f32, [1, "B", H])]
    lstm = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=H)
    graph = helper.make_graph([*nodes, lstm], "bomb", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def lstm_weights(I=3, H=4, seed=0, scale=0.5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"W": (1, 4 * H, I), "R": (1, 4 * H, H), "B": (1, 8 * H)}
    return {k: rng.uniform(-scale, scale, s).astype(np.float32) for k, s in shapes.items()}


def onnx_unused_bomb(path, side: int = 2**15) -> dict[str, np.ndarray]:
    """W folded from a Concat of two stored halves, and beside it a ConstantOfShape of
    [side, side] float (4 GiB at 2**15) that nothing reads. Returns the weights."""
    import onnx
    from onnx import helper, numpy_helper

    weights = lstm_weights()
    W = weights["W"]
    inits = [numpy_helper.from_array(weights[k], k) for k in ("R", "B")]
    inits += [
        numpy_helper.from_array(W[:, :8], "W_top"),
        numpy_helper.from_array(W[:, 8:], "W_bottom"),
        numpy_helper.from_array(np.array([side, side], np.int64), "bomb_shape"),
    ]
    one = numpy_helper.from_array(np.array([1.0], np.float32))
    nodes = [
        helper.make_node("Concat", ["W_top", "W_bottom"], ["W"], axis=1, name="join"),
        helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"], value=one, name="bomb"),
    ]
    onnx.save(_lstm_graph(nodes, inits), str(path))
    return weights


def onnx_folded_bomb(path, side: int = 2**15) -> None:
    """W sliced from a ConstantOfShape of [side, side]: folding W would make the bomb."""
    import onnx
    from onnx import helper, numpy_helper

    weights = lstm_weights()
    inits = [numpy_helper.from_array(weights[k], k) for k in ("R", "B")]
    inits += [
        numpy_helper.from_array(np.array([side, side], np.int64), "bomb_shape"),
        numpy_helper.from_array(np.array([0, 0], np.int64), "starts"),
        numpy_helper.from_array(np.array([16, 3], np.int64), "ends"),
        numpy_helper.from_array(np.array([1, 16, 3], np.int64), "w_shape"),
    ]
    one = numpy_helper.from_array(np.array([0.1], np.float32))
    nodes = [
        helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"], value=one, name="bomb"),
        helper.make_node("Slice", ["bomb", "starts", "ends"], ["W2"], name="cut"),
        helper.make_node("Reshape", ["W2", "w_shape"], ["W"], name="shape"),
    ]
    onnx.save(_lstm_graph(nodes, inits), str(path))


def onnx_unbounded_fold(path) -> None:
    """W reshaped from a Range whose limit is computed (a ReduceMax): shape inference cannot
    tell its size, so W is not folded."""
    import onnx
    from onnx import helper, numpy_helper

    weights = lstm_weights()
    inits = [numpy_helper.from_array(weights[k], k) for k in ("R", "B")]
    inits += [
        numpy_helper.from_array(np.array([2.0, 48.0], np.float32), "limits"),
        numpy_helper.from_array(np.array(0.0, np.float32), "start"),
        numpy_helper.from_array(np.array(1.0, np.float32), "delta"),
        numpy_helper.from_array(np.array([1, 16, 3], np.int64), "w_shape"),
    ]
    nodes = [
        helper.make_node("ReduceMax", ["limits"], ["limit"], keepdims=0, name="top"),
        helper.make_node("Range", ["start", "limit", "delta"], ["ramp"], name="ramp"),
        helper.make_node("Reshape", ["ramp", "w_shape"], ["W"], name="shape"),
    ]
    onnx.save(_lstm_graph(nodes, inits), str(path))


def onnx_constant_without_data(path, dims=(2**20, 2**20)) -> None:
    """An unused Constant declaring `dims` float and holding no data."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = lstm_weights()
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    value = TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=list(dims))
    nodes = [helper.make_node("Constant", [], ["huge"], value=value, name="huge")]
    onnx.save(_lstm_graph(nodes, inits), str(path))


def onnx_subgraph_constant(path, dims=(2**20, 2**20)) -> None:
    """The same Constant inside the then-branch of an If that nothing reads."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = lstm_weights()
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array(True), "cond"))
    value = TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=list(dims))
    out = helper.make_tensor_value_info("huge", TensorProto.FLOAT, None)
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["huge"], value=value, name="huge")], "b", [], [out]
    )
    small = helper.make_graph(
        [helper.make_node("Constant", [], ["huge"], value_float=1.0, name="one")], "s", [], [out]
    )
    nodes = [helper.make_node("If", ["cond"], ["chosen"], then_branch=branch, else_branch=small)]
    onnx.save(_lstm_graph(nodes, inits), str(path))


def onnx_subgraph_bomb(path, side: int = 2**15) -> None:
    """An If whose then-branch sums a ConstantOfShape of [side, side] float, its shape a
    Constant of that branch; the If's output is a graph output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = lstm_weights()
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array(True), "cond"))
    shape = numpy_helper.from_array(np.array([side, side], np.int64))
    one = numpy_helper.from_array(np.array([1.0], np.float32))
    then = helper.make_graph(
        [
            helper.make_node("Constant", [], ["side"], value=shape),
            helper.make_node("ConstantOfShape", ["side"], ["big"], value=one, name="inner"),
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Constant", [], ["zero"], value_float=0.0)],
        "else",
        [],
        [helper.make_tensor_value_info("zero", TensorProto.FLOAT, None)],
    )
    choice = helper.make_node(
        "If", ["cond"], ["chosen"], then_branch=then, else_branch=other, name="choice"
    )
    model = _lstm_graph([choice], inits)
    model.graph.output.append(helper.make_tensor_value_info("chosen", TensorProto.FLOAT, None))
    onnx.save(model, str(path))


def onnx_declared_T(path, T: int = 2**40) -> None:
    """An honest LSTM whose graph input X declares T = 2**40."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = lstm_weights()
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, 2, 3])
    y = helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 2, 4])
    onnx.save(_lstm_graph([], inits, [x], [y]), str(path))


def onnx_external(path, location: str) -> None:
    """W kept as external data at `location`."""
    import onnx
    from onnx import TensorProto, numpy_helper

    weights = lstm_weights()
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    W = inits[0]
    W.ClearField("raw_data")
    W.data_location = TensorProto.EXTERNAL
    W.external_data.add(key="location", value=location)
    onnx.save(_lstm_graph([], inits), str(path))


def onnx_short_raw_data(path) -> None:
    """R's raw data cut to half of what its dims say."""
    import onnx
    from onnx import numpy_helper

    weights = lstm_weights()
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inits[1].raw_data = inits[1].raw_data[: len(inits[1].raw_data) // 2]
    onnx.save(_lstm_graph([], inits), str(path))


def identity_chain(path, count: int, I: int = 3, H: int = 4, scale=0.5) -> dict[str, np.ndarray]:
    """`count` Identity nodes between the graph input X and an LSTM node, its weights drawn
    from U(-scale, scale). Returns the weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = lstm_weights(I, H, scale=scale)
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    names = ["X"] + [f"copy{k}" for k in range(count)]
    nodes = [helper.make_node("Identity", [names[k]], [names[k + 1]]) for k in range(count)]
    nodes.append(helper.make_node("LSTM", [names[-1], "W", "R", "B"], ["Y", "Y_h"], hidden_size=H))
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("X", f32, ["T", "B", I])],
        [helper.make_tensor_value_info("Y_h", f32, [1, "B", H])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return weights


def honest_node_file(path, H: int):
    """An ordinary LSTM file (onnx_user_files.node_file) of hidden size H, X [T, B, 8]."""
    return onnx_user_files.node_file(path, "lstm", I=8, H=H, static=False)


def honest_lstm(path, H: int) -> None:
    """An LSTM of I = 8 and hidden size H, weights at the scale of an initialised one
    (1/sqrt(H)), its X read directly."""
    identity_chain(path, 0, I=8, H=H, scale=H**-0.5)
