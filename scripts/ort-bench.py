#!/usr/bin/env python3
"""onnxruntime side of `cxr-edge bench-model` (a dev tool, never on the device).

Times the bundle's ONNX graphs in onnxruntime on the inputs of the bundle's
parity.json, at the given thread count, and prints one JSON object:
session creation (load) time per graph, and every timed run in milliseconds
(with its median) of the encoder, the int8 encoder (if the bundle has one), one
decoder step, and a whole study: the encoder, then one decoder step per token
of `--tokens` (the sequence tract decoded), each step fed the state the
previous one returned, as the device's decoding loop does. Each latency
includes Python's call overhead for `InferenceSession.run` (about 10 µs a call).
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
    ap.add_argument("--studies", type=int, default=0)
    ap.add_argument("--tokens", default="", help="comma-separated token ids of one study")
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

    def timed(key, fn, runs):
        fn()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        out[key] = statistics.median(times)
        out[key + "_samples"] = times

    out = {
        "onnxruntime": ort.__version__,
        "threads": a.threads,
        "machine": platform.machine(),
    }
    image = np.asarray(parity["image"], dtype=np.float32).reshape(1, 1, size, size)
    enc, out["load_encoder_ms"] = session(manifest["onnx_encoder"])
    timed("encoder_ms", lambda: enc.run(None, {"image": image}), a.runs)
    if "encoder.int8.onnx" in manifest["files"]:
        q, out["load_encoder_int8_ms"] = session("encoder.int8.onnx")
        timed("encoder_int8_ms", lambda: q.run(None, {"image": image}), a.runs)

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
    timed("decoder_step_ms", lambda: dec.run(None, feeds), a.steps)
    tokens = [int(t) for t in a.tokens.split(",") if t]
    if a.studies > 0 and tokens:
        timed("study_ms", lambda: study(enc, dec, image, tokens), a.studies)
        out["study_steps"] = len(tokens)
    print(json.dumps(out))
    return 0


def study(enc, dec, image, tokens):
    """Encoder, then one decoder step per token, the state threaded through."""
    import numpy as np

    values = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {"image": image})))
    names = [i.name for i in dec.get_inputs()]
    h = values["h0"]
    for token in tokens:
        feeds = {"token": np.asarray([token], dtype=np.int64), "h": h}
        for name in names:
            if name not in feeds:
                feeds[name] = values[name]
        h = dec.run(None, feeds)[1]


if __name__ == "__main__":
    sys.exit(main())
