#!/usr/bin/env python3
"""Run a TFLite image classifier under LiteRT (the TFLite runtime) and print its
pre-softmax logits: the independent oracle for the trainer's TFLite reader.

Usage: scripts/litert-oracle.py MODEL.tflite IMAGES.u8 N
  IMAGES.u8: N images, 224 x 224 x 3 uint8 RGB, row-major, back to back.
Prints JSON: {"logits": [[...1001 floats...], ...]} (dequantized).
"""
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main(model, images, n):
    it = Interpreter(model_path=model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    softmax = [op for op in it._get_ops_details() if op["op_name"] == "SOFTMAX"][0]
    logits_index = int(softmax["inputs"][0])
    detail = [t for t in it.get_tensor_details() if t["index"] == logits_index][0]
    scale, zero = detail["quantization"]
    side = inp["shape"][1]
    data = np.fromfile(images, dtype=np.uint8).reshape(n, side, side, 3)
    out = []
    for x in data:
        it.set_tensor(inp["index"], x[None])
        it.invoke()
        q = it.get_tensor(logits_index).astype(np.float64).reshape(-1)
        out.append(((q - zero) * scale).tolist())
    json.dump({"logits": out}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
