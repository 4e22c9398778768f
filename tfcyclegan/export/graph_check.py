"""A SavedModel is code: the ops it may run are checked before it is loaded.

TensorFlow runs whatever ops a SavedModel's graph holds, file and network ops
included (one holding `tf.io.write_file` wrote a file when translated). Before
`load_translator` loads a SavedModel, `check_saved_model_ops` reads its graph
(the protocol buffer, nothing run) and refuses any op outside `ALLOWED_OPS`:
what image-to-image networks, their serving signatures (decode, encode, batch
loops) and variables need. The save/restore functions TensorFlow writes into
every SavedModel (`__inference__traced_save_*` / `_restore_*`) may hold their
checkpoint ops; nothing else may call them.
"""

import os
import re

ALLOWED_OPS = frozenset(
    # Arithmetic, comparisons and shapes.
    "Abs Add AddN AddV2 All Any ArgMax ArgMin BiasAdd Cast Ceil ClipByValue ConcatV2 Const Cumsum "
    "DepthToSpace Div DivNoNan EnsureShape Equal Exp ExpandDims Fill Floor FloorDiv FloorMod Gather "
    "GatherNd GatherV2 Greater GreaterEqual Identity IdentityN Less LessEqual Log LogicalAnd LogicalNot "
    "LogicalOr Max Maximum Mean Min Minimum Mod Mul Neg NoOp NotEqual OnesLike Pack Pad PadV2 "
    "Placeholder PlaceholderWithDefault Pow Prod Range Rank RealDiv Reciprocal Reshape ReverseV2 Round "
    "Rsqrt Select SelectV2 Shape ShapeN Sign Size Slice SpaceToDepth Split SplitV Sqrt Square "
    "SquaredDifference Squeeze StopGradient StridedSlice Sub Sum Tile Transpose Unpack Where ZerosLike "
    "Assert CheckNumerics "
    # Networks.
    "BatchMatMul BatchMatMulV2 BatchMatMulV3 Conv2D Conv2DBackpropInput DepthwiseConv2dNative "
    "Elu FusedBatchNorm FusedBatchNormV3 LeakyRelu MatMul MirrorPad Relu Relu6 ResizeBilinear "
    "ResizeBicubic ResizeNearestNeighbor ResizeArea ScaleAndTranslate Selu Sigmoid Softplus Tanh "
    "FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars "
    # Image bytes in and out (the serving signatures).
    "DecodeImage DecodeJpeg DecodePng DecodeBmp DecodeGif DecodeWebP DecodeRaw DecodePaddedRaw "
    "EncodePng EncodeJpeg ExtractJpegShape "
    # Control flow, functions and batch loops.
    "If StatelessIf While StatelessWhile Case StatelessCase PartitionedCall StatefulPartitionedCall "
    "TensorListFromTensor TensorListGetItem TensorListLength TensorListReserve TensorListSetItem "
    "TensorListStack TensorListElementShape "
    # Variables.
    "VarHandleOp ReadVariableOp VarIsInitializedOp DisableCopyOnRead".split()
)
"""Op types a SavedModel's signatures and functions may hold."""

# What TensorFlow's own save and restore functions hold besides allowed ops.
_SAVER_OPS = frozenset(
    "AssignVariableOp MergeV2Checkpoints RestoreV2 SaveV2 ShardedFilename StaticRegexFullMatch "
    "StringJoin".split()
)
_SAVER_FUNCTION = re.compile(r"^__inference__traced_(save|restore)_\d+$")
_CALLS = ("PartitionedCall", "StatefulPartitionedCall")


def saved_model_ops(version_dir):
    """{op type: [where it is]} of a SavedModel's graph and function library, read from
    `saved_model.pb` without loading it; the save/restore functions aside."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(os.fspath(version_dir), "saved_model.pb")
    model = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        model.ParseFromString(f.read())
    found = {}
    for graph in model.meta_graphs:
        library = graph.graph_def.library.function
        savers = {f.signature.name for f in library if _SAVER_FUNCTION.match(f.signature.name)}
        places = [("the graph", graph.graph_def.node)]
        places += [(f.signature.name, f.node_def) for f in library if f.signature.name not in savers]
        for place, nodes in places:
            for node in nodes:
                called = node.attr["f"].func.name if node.op in _CALLS else None
                if called in savers and place != "the graph":
                    found.setdefault(f"a call of {called}", []).append(place)
                found.setdefault(node.op, []).append(place)
        for function in library:
            if function.signature.name in savers:
                for node in function.node_def:
                    if node.op not in _SAVER_OPS:
                        found.setdefault(node.op, []).append(function.signature.name)
    return found


def check_saved_model_ops(version_dir):
    """Refuses a SavedModel that holds an op outside `ALLOWED_OPS` (file, network or
    Python ops, say), naming the ops and where they are; nothing of it is run.

    Raises:
        ValueError: the disallowed op types, e.g. `WriteFile (in __inference_translate_42)`.
    """
    refused = {op: places for op, places in saved_model_ops(version_dir).items() if op not in ALLOWED_OPS}
    if refused:
        listed = ", ".join(f"{op} (in {places[0]})" for op, places in sorted(refused.items()))
        raise ValueError(
            f"Refusing to run the SavedModel at {version_dir}: it holds ops an image translator "
            f"does not need: {listed}. A SavedModel is code (it can read and write files); "
            "tfcyclegan runs only SavedModels made of network, image and control-flow ops."
        )
