#!/usr/bin/env python3
"""Reads a GGUF file written by `llama2 convert` with gguf-py (llama.cpp's own Python
reader, `pip install gguf`) and checks it the way llama.cpp will read it.

    check_gguf.py FILE.gguf [--f32 REFERENCE.gguf]

Checks: every metadata key and tensor decodes; the llama hyperparameters and the tokenizer
arrays are there with the right types and lengths; the tensors are exactly llama.cpp's
llama names for that many layers (output.weight optional), with the shapes the
hyperparameters give, norms F32 and the matrices of one type matching general.file_type;
every tensor dequantizes (gguf.quants.dequantize) to finite values.

With --f32 (the F32 conversion of the same model): each quantized tensor must be what
gguf-py's reference quantizer makes of the F32 values, byte for byte (F16, BF16, Q8_0,
Q4_0), or decode within one quantization step of them (Q4_K, which has no reference
quantizer in gguf-py).

Exits 1 naming every problem found, 0 after printing a one-line summary.
"""

import argparse
import importlib.metadata
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V
from gguf import quants

# llama_ftype of the matrices' type, as llama.cpp numbers them.
FILE_TYPES = {T.F32: 0, T.F16: 1, T.Q4_0: 2, T.Q8_0: 7, T.Q4_K: 14, T.BF16: 32}
LAYER_TENSORS = [
    "attn_q", "attn_k", "attn_v", "attn_output", "attn_norm",
    "ffn_gate", "ffn_down", "ffn_up", "ffn_norm",
]
NORMS = {"attn_norm", "ffn_norm", "output_norm"}


def value(field):
    """A field's value: a scalar, a string, or a list."""
    if field.types[0] == V.ARRAY:
        if field.types[-1] == V.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if field.types[0] == V.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]].tolist()[0]


def check(path, reference, problems):
    reader = gguf.GGUFReader(path)
    fields = {name: value(field) for name, field in reader.fields.items()}
    types = {name: field.types for name, field in reader.fields.items()}

    def need(key, value_type):
        if key not in fields:
            problems.append(f"missing key {key}")
            return None
        if types[key][0] != value_type:
            problems.append(f"{key} is {types[key][0].name}, not {value_type.name}")
        return fields[key]

    if need("general.architecture", V.STRING) != "llama":
        problems.append(f"general.architecture is {fields.get('general.architecture')!r}")
    dim = need("llama.embedding_length", V.UINT32)
    hidden = need("llama.feed_forward_length", V.UINT32)
    layers = need("llama.block_count", V.UINT32)
    heads = need("llama.attention.head_count", V.UINT32)
    kv_heads = need("llama.attention.head_count_kv", V.UINT32)
    need("llama.context_length", V.UINT32)
    need("llama.attention.layer_norm_rms_epsilon", V.FLOAT32)
    rope = need("llama.rope.dimension_count", V.UINT32)
    file_type = need("general.file_type", V.UINT32)
    if need("tokenizer.ggml.model", V.STRING) != "llama":
        problems.append("tokenizer.ggml.model is not llama")
    tokens = need("tokenizer.ggml.tokens", V.ARRAY) or []
    scores = need("tokenizer.ggml.scores", V.ARRAY) or []
    token_types = need("tokenizer.ggml.token_type", V.ARRAY) or []
    for key in ["bos_token_id", "eos_token_id", "unknown_token_id"]:
        need(f"tokenizer.ggml.{key}", V.UINT32)
    vocab = len(tokens)
    if len(scores) != vocab or len(token_types) != vocab:
        problems.append(f"{vocab} tokens, {len(scores)} scores, {len(token_types)} types")
    if types.get("tokenizer.ggml.scores", [None, None])[-1] != V.FLOAT32:
        problems.append("tokenizer.ggml.scores are not FLOAT32")
    if types.get("tokenizer.ggml.token_type", [None, None])[-1] != V.INT32:
        problems.append("tokenizer.ggml.token_type are not INT32")
    if None in (dim, hidden, layers, heads, kv_heads):
        return 0, len(fields)
    if rope != dim // heads:
        problems.append(f"rope.dimension_count {rope} is not the head size {dim // heads}")

    kv_dim = dim * kv_heads // heads
    shapes = {"token_embd": [dim, vocab], "output_norm": [dim], "output": [dim, vocab]}
    layer_shapes = {
        "attn_q": [dim, dim], "attn_k": [dim, kv_dim], "attn_v": [dim, kv_dim],
        "attn_output": [dim, dim], "attn_norm": [dim], "ffn_gate": [dim, hidden],
        "ffn_down": [hidden, dim], "ffn_up": [dim, hidden], "ffn_norm": [dim],
    }
    for layer in range(layers):
        for name, shape in layer_shapes.items():
            shapes[f"blk.{layer}.{name}"] = shape
    expected = {f"{name}.weight": shape for name, shape in shapes.items()}
    found = {tensor.name: tensor for tensor in reader.tensors}
    for name in sorted(set(expected) - set(found) - {"output.weight"}):
        problems.append(f"missing tensor {name}")
    for name in sorted(set(found) - set(expected)):
        problems.append(f"unexpected tensor {name}")

    ref = {}
    if reference:
        ref = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(reference).tensors}
    matrix_types = set()
    for name, tensor in found.items():
        if name not in expected:
            continue
        shape = [int(d) for d in tensor.shape]
        if shape != expected[name]:
            problems.append(f"{name} has shape {shape}, not {expected[name]}")
            continue
        kind = name.split(".")[-2]
        if kind in NORMS:
            if tensor.tensor_type != T.F32:
                problems.append(f"norm {name} is {tensor.tensor_type.name}, not F32")
        else:
            matrix_types.add(tensor.tensor_type)
        values = quants.dequantize(tensor.data, tensor.tensor_type)
        if values.size != int(np.prod(shape)):
            problems.append(f"{name} decodes to {values.size} values, not {np.prod(shape)}")
        elif not np.isfinite(values).all():
            problems.append(f"{name} decodes to values that are not finite")
        if name in ref:
            check_against_reference(name, tensor, values, ref[name], problems)
    if len(matrix_types) != 1:
        problems.append(f"the matrices have types {sorted(t.name for t in matrix_types)}")
    elif FILE_TYPES.get(next(iter(matrix_types))) != file_type:
        problems.append(f"general.file_type {file_type} does not match the matrices' type")
    return len(found), len(fields)


def check_against_reference(name, tensor, values, f32, problems):
    """Our encoding of a tensor against gguf-py's of the F32 values."""
    f32 = np.asarray(f32, dtype=np.float32).reshape(-1)
    kind = tensor.tensor_type
    if kind in (T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0):
        want = quants.quantize(f32.reshape(values.shape), kind)
        got = np.asarray(tensor.data)
        if want.tobytes() != got.tobytes():
            differing = int((want.view(np.uint8) != got.view(np.uint8)).sum())
            problems.append(f"{name}: {differing} bytes differ from gguf-py's {kind.name}")
    elif kind == T.Q4_K:
        blocks = f32.reshape(-1, 256)
        decoded = values.reshape(-1, 256)
        step = (np.maximum(blocks.max(1), 0) - np.minimum(blocks.min(1), 0)) / 15
        worst = (np.abs(decoded - blocks) / np.maximum(step, 1e-30)[:, None]).max()
        if worst > 1.01:
            problems.append(f"{name}: Q4_K values are {worst:.2f} steps from the F32 ones")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--f32", help="the F32 GGUF conversion of the same model")
    args = parser.parse_args()
    problems = []
    try:
        tensors, keys = check(args.file, args.f32, problems)
    except Exception as e:  # gguf-py refusing the file is the finding
        problems.append(f"gguf-py cannot read it: {type(e).__name__}: {e}")
        tensors = keys = 0
    if problems:
        for problem in problems:
            print(f"check_gguf.py: {args.file}: {problem}", file=sys.stderr)
        sys.exit(1)
    version = importlib.metadata.version("gguf")
    print(f"{args.file}: gguf-py {version} read {keys} keys and {tensors} tensors: ok")


if __name__ == "__main__":
    main()
