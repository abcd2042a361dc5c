#!/usr/bin/env python3
"""onnxruntime side of `cxr-edge bench-model` (a dev tool, never on the device).

Times the bundle's ONNX graphs in onnxruntime on the inputs of the bundle's
parity.json, at the given thread count, and prints one JSON object:
session creation (load) time per graph and median latency of the encoder, the
int8 encoder (if the bundle has one) and one decoder step, in milliseconds.
Each latency includes Python's call overhead for `InferenceSession.run`.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        print(json.dumps({"error": f"onnxruntime is not installed: {e}"}))
        return 0

    with open(os.path.join(a.bundle, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(a.bundle, manifest["parity"])) as f:
        parity = json.load(f)
    size = manifest["model"]["input_size"]

    def session(name):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        t = time.perf_counter()
        s = ort.InferenceSession(
            os.path.join(a.bundle, name), opts, providers=["CPUExecutionProvider"]
        )
        return s, (time.perf_counter() - t) * 1e3

    def median_ms(fn, runs):
        fn()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)

    out = {
        "onnxruntime": ort.__version__,
        "threads": a.threads,
        "machine": platform.machine(),
    }
    image = np.asarray(parity["image"], dtype=np.float32).reshape(1, 1, size, size)
    enc, out["load_encoder_ms"] = session(manifest["onnx_encoder"])
    out["encoder_ms"] = median_ms(lambda: enc.run(None, {"image": image}), a.runs)
    if "encoder.int8.onnx" in manifest["files"]:
        q, out["load_encoder_int8_ms"] = session("encoder.int8.onnx")
        out["encoder_int8_ms"] = median_ms(lambda: q.run(None, {"image": image}), a.runs)

    dec, out["load_decoder_ms"] = session(manifest["onnx_decoder"])
    feeds = {}
    for i in dec.get_inputs():
        shape = [int(d) for d in i.shape]
        if i.name == "token":
            feeds[i.name] = np.asarray([parity["steps"][0]["token"]], dtype=np.int64)
        elif i.name == "h":
            feeds[i.name] = np.asarray(parity["h0"], dtype=np.float32).reshape(shape)
        else:
            feeds[i.name] = np.asarray(parity[i.name], dtype=np.float32).reshape(shape)
    out["decoder_step_ms"] = median_ms(lambda: dec.run(None, feeds), a.steps)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
