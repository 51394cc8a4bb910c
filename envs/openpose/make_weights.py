#!/usr/bin/env python3
"""Write random OpenPose weights (.caffemodel) from the official network descriptions (.prototxt).

For tests only: the weights have the official networks' layer names and blob shapes, so the real
pyopenpose loads and runs them end to end, but what it detects means nothing.

    python envs/openpose/make_weights.py MODELS_DIR [--seed 0]

MODELS_DIR is an OpenPose ``models/`` folder (or a copy with the three prototxts): it gets
pose/body_25/pose_iter_584000.caffemodel, face/pose_iter_116000.caffemodel and
hand/pose_iter_102000.caffemodel. A caffemodel is a serialised caffe.NetParameter; this script
writes the few fields Caffe reads when it copies trained layers (layer name, type, blobs with
shape and data), by hand, so it needs neither Caffe nor protobuf.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

NETWORKS = {  # prototxt -> caffemodel, inside an OpenPose models/ folder
    "pose/body_25/pose_deploy.prototxt": "pose/body_25/pose_iter_584000.caffemodel",
    "face/pose_deploy.prototxt": "face/pose_iter_116000.caffemodel",
    "hand/pose_deploy.prototxt": "hand/pose_iter_102000.caffemodel",
}


class PrototxtError(ValueError):
    pass


# ---- reading protobuf text format (the subset prototxts use) ----------------------------------------

_TOKEN = re.compile(r'\s*(?:#[^\n]*\n?\s*)*(?:("(?:[^"\\]|\\.)*")|([{}:])|([^\s{}:"#]+))')


def parse_prototxt(text: str) -> dict:
    """A prototxt as nested dicts: every field name maps to the list of its values (str or dict)."""
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            break
        position = match.end()
        quoted, punctuation, word = match.groups()
        if quoted is not None:
            tokens.append(("value", quoted[1:-1]))
        elif punctuation is not None:
            tokens.append((punctuation, punctuation))
        elif word is not None:
            tokens.append(("word", word))
    if text[position:].strip():
        raise PrototxtError(f"cannot read the prototxt at {text[position:position + 30]!r}")

    def block(index: int, closing: bool) -> tuple[dict, int]:
        fields: dict[str, list] = {}
        while index < len(tokens):
            kind, value = tokens[index]
            if kind == "}":
                if not closing:
                    raise PrototxtError("unbalanced '}'")
                return fields, index + 1
            if kind != "word":
                raise PrototxtError(f"expected a field name, found {value!r}")
            name = value
            index += 1
            if index < len(tokens) and tokens[index][0] == ":":
                index += 1
            if index < len(tokens) and tokens[index][0] == "{":
                child, index = block(index + 1, True)
                fields.setdefault(name, []).append(child)
            elif index < len(tokens) and tokens[index][0] in ("word", "value"):
                fields.setdefault(name, []).append(tokens[index][1])
                index += 1
            else:
                raise PrototxtError(f"field {name!r} has no value")
        if closing:
            raise PrototxtError("missing '}'")
        return fields, index

    fields, _ = block(0, False)
    return fields


def _one(fields: dict, name: str, default=None):
    values = fields.get(name)
    return values[0] if values else default


# ---- shapes of the learned blobs ----------------------------------------------------------------------

def parameter_shapes(net: dict) -> list[tuple[str, str, list[tuple[int, ...]]]]:
    """(layer name, layer type, [blob shapes]) of every layer with learned parameters, in order."""
    channels: dict[str, int] = {}
    inputs = net.get("input", [])
    dims = [int(d) for d in net.get("input_dim", [])]
    for i, name in enumerate(inputs):
        if len(dims) >= 4 * (i + 1):
            channels[name] = dims[4 * i + 1]
    if net.get("input_shape"):
        raise PrototxtError("input_shape is not supported; use input_dim")
    out = []
    for layer in net.get("layer", []):
        name, kind = _one(layer, "name"), _one(layer, "type")
        bottoms, tops = layer.get("bottom", []), layer.get("top", [])
        missing = [b for b in bottoms if b not in channels]
        if missing:
            raise PrototxtError(f"layer {name!r}: unknown input blob {missing[0]!r}")
        if kind == "Input":
            shape = _one(_one(layer, "input_param", {}), "shape", {})
            channels[tops[0]] = int(shape.get("dim", [1, 3])[1])
        elif kind == "Convolution":
            param = _one(layer, "convolution_param", {})
            count = int(_one(param, "num_output"))
            group = int(_one(param, "group", 1))
            kernel = param.get("kernel_size")
            kh = int(_one(param, "kernel_h", kernel[0] if kernel else 1))
            kw = int(_one(param, "kernel_w", kernel[-1] if kernel else 1))
            shapes = [(count, channels[bottoms[0]] // group, kh, kw)]
            if _one(param, "bias_term", "true") != "false":
                shapes.append((count,))
            out.append((name, kind, shapes))
            channels[tops[0]] = count
        elif kind == "PReLU":
            shared = _one(_one(layer, "prelu_param", {}), "channel_shared", "false") == "true"
            out.append((name, kind, [(1,) if shared else (channels[bottoms[0]],)]))
            channels[tops[0]] = channels[bottoms[0]]
        elif kind == "Concat":
            axis = int(_one(_one(layer, "concat_param", {}), "axis", 1))
            if axis != 1:
                raise PrototxtError(f"layer {name!r}: Concat along axis {axis} is not supported")
            channels[tops[0]] = sum(channels[b] for b in bottoms)
        elif kind in ("ReLU", "Pooling", "Dropout", "Sigmoid", "TanH", "Softmax"):
            channels[tops[0]] = channels[bottoms[0]]
        else:
            raise PrototxtError(f"layer {name!r}: type {kind!r} is not supported")
    return out


# ---- writing a caffe.NetParameter -------------------------------------------------------------------

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _blob(data: np.ndarray) -> bytes:
    # BlobProto: shape = 7 (BlobShape: dim = 1, packed int64), data = 5 (packed float)
    shape = _field(1, b"".join(_varint(d) for d in data.shape))
    return _field(7, shape) + _field(5, np.ascontiguousarray(data, "<f4").tobytes())


def caffemodel(layers: list[tuple[str, str, list[np.ndarray]]]) -> bytes:
    """NetParameter bytes: layer = 100 (LayerParameter: name = 1, type = 2, blobs = 7)."""
    parts = []
    for name, kind, blobs in layers:
        body = _field(1, name.encode()) + _field(2, kind.encode()) + b"".join(_field(7, _blob(b)) for b in blobs)
        parts.append(_field(100, body))
    return b"".join(parts)


#: The last layer of the body network's heat maps (25 parts, then the background).
BODY_HEATMAPS = "Mconv7_stage1_L1"


def random_weights(shapes: list[tuple[str, str, list[tuple[int, ...]]]], rng: np.random.Generator, *,
                   part_bias: float = 0.0):
    """He-normal convolutions (activations keep their scale through the ReLUs), small random biases,
    PReLU slopes of 0.25 (Caffe's default). ``part_bias`` is added to the body parts' heat maps: every
    part then has candidates all over the image, so the people OpenPose assembles have most parts."""
    layers = []
    for name, kind, blob_shapes in shapes:
        blobs = []
        for shape in blob_shapes:
            if kind == "PReLU":
                blobs.append(np.full(shape, 0.25, np.float32))
            elif len(shape) == 4:
                fan_in = shape[1] * shape[2] * shape[3]
                blobs.append(rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32))
            else:
                bias = rng.normal(0, 0.05, shape).astype(np.float32)
                if name == BODY_HEATMAPS:
                    bias[:-1] += part_bias
                blobs.append(bias)
        layers.append((name, kind, blobs))
    return layers


def write_weights(models: Path, seed: int = 0, part_bias: float = 0.0) -> list[Path]:
    written = []
    for index, (prototxt, model) in enumerate(NETWORKS.items()):
        source = models / prototxt
        if not source.is_file():
            raise FileNotFoundError(f"{source}: not found (an OpenPose models/ folder has it)")
        shapes = parameter_shapes(parse_prototxt(source.read_text()))
        layers = random_weights(shapes, np.random.default_rng(seed + index), part_bias=part_bias)
        target = models / model
        partial = target.with_suffix(".caffemodel.partial")
        partial.write_bytes(caffemodel(layers))
        partial.replace(target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, help="an OpenPose models/ folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--part-bias", type=float, default=0.0,
                        help="added to the body parts' heat maps (default 0)")
    args = parser.parse_args(argv)
    try:
        for path in write_weights(args.models, args.seed, args.part_bias):
            print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB)")
    except (OSError, PrototxtError) as error:
        print(f"make_weights: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
