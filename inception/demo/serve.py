"""The serving step of ``make demo``: export the model the training step produced, serve it on
127.0.0.1 (free ports), ask it over REST and gRPC about a few images of its data set, shut down."""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from pathlib import Path


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def run(workdir, trained: dict) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from inception.app.resolve import resolve
    from inception.serving.export import export_saved_model
    from inception.serving.repository import ModelSpec
    from inception.serving.server import ModelServer, ServerThread

    workdir = Path(workdir)
    out = workdir / "serving"
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"  inception export --model {trained['keras_model']} --name demo --version 1 "
        f"--out {out} --overwrite   (class names and input size come with the model)"
    )
    member = resolve(trained["keras_model"])
    path = export_saved_model([member], out, "demo", 1, top_k=3, overwrite=True)
    print(f"  exported {path} (serving_default, predict_pixels, classify)")

    images = sorted(Path(trained["data_dir"]).rglob("*.jpg"))
    picked = [images[i * len(images) // 3] for i in range(3)] if len(images) >= 3 else images
    server = ModelServer(
        [ModelSpec("demo", str(out / "demo"))], host="127.0.0.1", rest_port=0, grpc_port=0
    )
    answers = {"rest": [], "grpc": []}
    with ServerThread(server):
        print(
            f"  inception serve --model-base-path {out / 'demo'} --host 127.0.0.1 "
            f"(REST :{server.rest_port}, gRPC :{server.grpc_port})"
        )
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/demo"
        body = {"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in picked]}
        rows = _post(url + ":predict", body)["predictions"]
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "demo"
        request.inputs["images"].CopyFrom(
            tf.make_tensor_proto([p.read_bytes() for p in picked], dtype=tf.string)
        )
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=120
        )
        channel.close()
        classes = tf.make_ndarray(reply.outputs["classes"])
        scores = tf.make_ndarray(reply.outputs["scores"])
        for i, (p, row) in enumerate(zip(picked, rows, strict=True)):
            rest = list(zip(row["classes"], row["scores"], strict=True))
            grpc_top = [(c.decode(), float(s)) for c, s in zip(classes[i], scores[i], strict=True)]
            answers["rest"].append(rest)
            answers["grpc"].append(grpc_top)
            print(
                f"  {p.parent.name}/{p.name}: REST "
                + ", ".join(f"{c} {s:.2f}" for c, s in rest)
                + " | gRPC "
                + ", ".join(f"{c} {s:.2f}" for c, s in grpc_top)
            )
        status = json.loads(urllib.request.urlopen(url, timeout=30).read())
        print(f"  GET /v1/models/demo -> {json.dumps(status)}")
    print("  server stopped")
    return {"export_dir": str(path), **answers}
