"""MTCNN face detector (Zhang et al., 2016): three small CNNs in a cascade, P-Net proposes, R-Net and O-Net refine.

The trained weights come from the facenet-pytorch wheel (installed --no-deps). Its own detection code imports
torchvision, which cannot be installed beside the CPU build of torch, so only its state dicts are read
(`torch.load(..., weights_only=True)`: plain tensors, no pickled code) and the cascade is written here with a
numpy non-maximum suppression. Same networks, thresholds and pyramid as facenet-pytorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.errors import ModelUnavailable
from ..models.registry import find_model
from .arrays import resize_to


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).flatten(1)  # the original (Caffe) layout
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)[:, 1]


def weights_folder(models_dir=None) -> Path:
    """facenet-pytorch's data folder (registry entry `mtcnn`), found without importing the package: its
    import needs torchvision."""
    try:
        return find_model("mtcnn", models_dir)
    except ModelUnavailable as exc:  # plain `pip install facenet-pytorch` would pull another torch
        raise ModelUnavailable("mtcnn", exc.missing, "Install it with `pip install --no-deps facenet-pytorch==2.6.0`.",
                               exc.looked_in) from None


def load_net(net: nn.Module, path: Path) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - damaged or foreign files: one message naming the file
        raise ModelUnavailable("mtcnn", f"cannot load {path} ({type(exc).__name__}: {str(exc)[:200]})",
                               "Install facenet-pytorch again: `pip install --no-deps --force-reinstall "
                               "facenet-pytorch==2.6.0`.") from None
    return net.eval()


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices of the boxes kept, best first: each drops the later ones overlapping it more than `threshold`
    (intersection over union, or over the smaller box with `by_min`)."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = np.argsort(-scores, kind="stable"), []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        overlap = inter / (np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)


def squared(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre (the next network looks at square crops)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def regressed(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by the network's offsets (fractions of the box's size)."""
    out = boxes.copy()
    size = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], axis=1)
    out[:, :4] = boxes[:, :4] + offsets * np.concatenate([size, size], axis=1)
    return out


class MTCNN:
    """`detect(rgb)` -> (boxes (n, 4) x1 y1 x2 y2, scores (n,), landmarks (n, 5, 2): eyes, nose, mouth corners)."""

    def __init__(self, min_face: int = 20, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709, models_dir=None):
        folder = weights_folder(models_dir)
        self.pnet = load_net(PNet(), folder / "pnet.pt")
        self.rnet = load_net(RNet(), folder / "rnet.pt")
        self.onet = load_net(ONet(), folder / "onet.pt")
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor

    def detect(self, rgb: np.ndarray):
        # one thread: the nets are small, thread hand-offs cost more than they save, and the indexer already
        # runs one photo per core
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                rgb = np.ascontiguousarray(rgb)
                boxes = self._propose(torch.tensor(rgb, dtype=torch.float32).permute(2, 0, 1)[None])
                if len(boxes):
                    boxes = self._refine(rgb, boxes)
                if len(boxes):
                    return self._output(rgb, boxes)
                return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        finally:
            torch.set_num_threads(before)

    def _propose(self, image: torch.Tensor) -> np.ndarray:
        """P-Net over an image pyramid: (n, 5) squared boxes with scores."""
        h, w = image.shape[2:]
        scale, found = 12.0 / self.min_face, []
        while min(h, w) * scale >= 12:
            small = F.interpolate(image, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            offsets, prob = self.pnet(normalised(small))
            prob, offsets = prob[0].numpy(), offsets[0].numpy()
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys):
                cells = np.stack([xs, ys], axis=1).astype(np.float32)
                corners = np.concatenate([np.floor((2 * cells + 1) / scale), np.floor((2 * cells + 12) / scale)], 1)
                boxes = np.concatenate([corners, prob[ys, xs, None], offsets[:, ys, xs].T], axis=1)
                found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
            scale *= self.factor
        if not found:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        boxes[:, :4] += boxes[:, 5:9] * size
        return squared(boxes[:, :5])

    def _refine(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        offsets, prob = self.rnet(crops(rgb, boxes, 24))
        keep = prob.numpy() > self.thresholds[1]
        boxes, offsets = boxes[keep], offsets.numpy()[keep]
        boxes[:, 4] = prob.numpy()[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return squared(regressed(boxes[pick], offsets[pick]))

    def _output(self, rgb: np.ndarray, boxes: np.ndarray):
        offsets, points, prob = (t.numpy() for t in self.onet(crops(rgb, boxes, 48)))
        keep = prob > self.thresholds[2]
        boxes, offsets, points, prob = boxes[keep], offsets[keep], points[keep], prob[keep]
        w, h = boxes[:, 2:3] - boxes[:, 0:1] + 1, boxes[:, 3:4] - boxes[:, 1:2] + 1
        landmarks = np.stack([w * points[:, :5] + boxes[:, 0:1] - 1, h * points[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = regressed(boxes, offsets)
        pick = nms(boxes[:, :4], prob, 0.7, by_min=True)
        return boxes[pick, :4].astype(np.float32), prob[pick].astype(np.float32), landmarks[pick].astype(np.float32)


def normalised(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def crops(rgb: np.ndarray, boxes: np.ndarray, side: int) -> torch.Tensor:
    """The boxes cut from the image (zeros outside it), each resized to side x side, normalised."""
    h, w = rgb.shape[:2]
    corners = np.round(boxes[:, :4]).astype(int)
    corners[:, 2:] = np.maximum(corners[:, 2:], corners[:, :2] + 1)
    out = np.zeros((len(boxes), side, side, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(corners):
        patch = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = rgb[sy1:sy2, sx1:sx2]
        out[k] = resize_to(patch, side, side)
    return normalised(torch.from_numpy(out).permute(0, 3, 1, 2).float())
