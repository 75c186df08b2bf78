"""Stand-in buffalo_l files with the real models' inputs and outputs, so the insightface engine's own code
(loading through insightface, BGR input, detection, alignment, batched recognition) runs in tests.

The real weights cannot be downloaded here. These graphs are small and deterministic: the "detector" fires
where the photo is bright (SCRFD's 9-output layout: scores, box distances and 5 keypoints at strides
8/16/32, two anchors each; only stride 32 fires, once per bright 128 px square), the "recogniser" maps a 112x112 crop to 512 numbers
through a fixed random projection (ArcFace's input and output shapes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]
# keypoint offsets from the anchor centre, in strides: eyes, nose, mouth corners
KEYPOINTS = np.array([-0.3, -0.3, 0.3, -0.3, 0.0, 0.0, -0.25, 0.35, 0.25, 0.35], np.float32)


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def detector(path: Path) -> None:
    nodes, outputs = [], {"score": [], "bbox": [], "kps": []}
    nodes += [_const("half", np.float32(0.5)), _const("gain", np.float32(10.0)), _const("zero", np.float32(0.0)),
              _const("off", np.float32(-20.0)),
              _const("flat1", np.array([-1, 1], np.int64)), _const("box", np.full((1, 4), 2.0, np.float32)),
              _const("kp", KEYPOINTS[None, :])]
    for stride in (8, 16, 32):
        s = str(stride)
        nodes += [
            # stride 32 looks at a 128 px window centred on each anchor: it peaks on a bright 128 px square
            helper.make_node("AveragePool", ["input.1"], [f"pool{s}"], strides=[stride, stride],
                             **({"kernel_shape": [128, 128], "pads": [64, 64, 32, 32]} if stride == 32
                                else {"kernel_shape": [stride, stride]})),
            helper.make_node("ReduceMean", [f"pool{s}"], [f"mean{s}"], axes=[1], keepdims=1),
            helper.make_node("Sub", [f"mean{s}", "half"], [f"centred{s}"]),
            helper.make_node("Mul", [f"centred{s}", "gain" if stride == 32 else "zero"], [f"scaled{s}"]),
            helper.make_node("Add", [f"scaled{s}", "zero" if stride == 32 else "off"], [f"logit{s}"]),
            helper.make_node("Sigmoid", [f"logit{s}"], [f"prob{s}"]),
            helper.make_node("Concat", [f"prob{s}", f"prob{s}"], [f"anchors{s}"], axis=1),  # two anchors
            helper.make_node("Transpose", [f"anchors{s}"], [f"hwa{s}"], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [f"hwa{s}", "flat1"], [f"score_{s}"]),
            helper.make_node("Mul", [f"score_{s}", "zero"], [f"nil{s}"]),
            helper.make_node("Add", [f"nil{s}", "box"], [f"bbox_{s}"]),
            helper.make_node("Add", [f"nil{s}", "kp"], [f"kps_{s}"]),
        ]
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            outputs[kind].append(helper.make_tensor_value_info(f"{kind}_{s}", TensorProto.FLOAT, ["n", width]))
    graph = helper.make_graph(nodes, "scrfd_stand_in",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              outputs["score"] + outputs["bbox"] + outputs["kps"])
    onnx.save(helper.make_model(graph, opset_imports=OPSET), str(path))


def recogniser(path: Path, seed: int = 0) -> None:
    projection = np.random.default_rng(seed).standard_normal((192, 512)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        _const("projection", projection),
        helper.make_node("MatMul", ["flat", "projection"], ["fc1"]),
    ]
    graph = helper.make_graph(nodes, "arcface_stand_in",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["n", 512])])
    onnx.save(helper.make_model(graph, opset_imports=OPSET), str(path))


def install(models_dir: Path) -> Path:
    folder = models_dir / "buffalo_l"
    folder.mkdir(parents=True, exist_ok=True)
    detector(folder / "det_10g.onnx")
    recogniser(folder / "w600k_r50.onnx")
    return folder


def bright_squares(size=(480, 640), squares=((96, 128, 128), (256, 384, 128))) -> np.ndarray:
    """A dark photo with bright squares (y, x, side) where the stand-in detector will find 'faces'."""
    image = np.full((*size, 3), 10, np.uint8)
    for y, x, side in squares:
        image[y:y + side, x:x + side] = 250
    return image
