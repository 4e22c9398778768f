"""Send images to a tfcyclegan model in TF Serving; write the translated PNGs.

    python serving_client.py photo.jpg more/*.png --model cyclegan_a2b --out translated/
    python serving_client.py photos/ --model cyclegan_a2b --grpc localhost:8500

Talks to the SavedModel's `serving_default` signature: encoded images in
(`image_bytes`, JPEG/PNG/GIF/BMP/WebP, any sizes), PNGs out (`output_bytes`).
Over REST (default, port 8501) images travel base64-encoded in JSON, as TF
Serving's REST API wants binary data; over gRPC (port 8500) as a string
TensorProto in a PredictRequest.

Needs only the standard library for REST; gRPC needs `tensorflow-serving-api`
(which brings `grpcio` and TensorFlow's protos). It does not import tfcyclegan.

The request / response functions are importable:

    build_rest_request(images) -> dict          parse_rest_response(dict) -> [png bytes]
    build_predict_request(images, model) -> PredictRequest
    parse_predict_response(PredictResponse) -> [png bytes]
"""

import argparse
import base64
import json
import pathlib
import sys
import urllib.error
import urllib.request

SIGNATURE = "serving_default"
INPUT = "image_bytes"
OUTPUT = "output_bytes"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
# Translated PNGs of large images exceed gRPC's default 4 MB message limit.
GRPC_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class ServingError(RuntimeError):
    """TF Serving answered with an error (its message included)."""


# --- REST -------------------------------------------------------------------


def build_rest_request(images, signature=SIGNATURE, row_format=True):
    """The JSON body (a dict) of a REST predict request for encoded `images` (bytes).

    Row format: {"signature_name": ..., "instances": [{"b64": ...}, ...]}.
    Columnar:   {"signature_name": ..., "inputs": {"image_bytes": [{"b64": ...}, ...]}}.
    TF Serving decodes {"b64": ...} to bytes because the input's name ends in
    "_bytes".
    """
    encoded = [{"b64": base64.b64encode(bytes(image)).decode("ascii")} for image in images]
    body = {"signature_name": signature}
    if row_format:
        body["instances"] = encoded
    else:
        body["inputs"] = {INPUT: encoded}
    return body


def _b64_value(value):
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if isinstance(value, dict) and OUTPUT in value:
        return _b64_value(value[OUTPUT])
    raise ServingError(f"Unexpected value in the response: {str(value)[:200]}")


def parse_rest_response(body):
    """The PNG bytes in a REST predict response (dict or JSON text), in request order.

    Accepts both of TF Serving's shapes: {"predictions": [...]} (row format
    requests) and {"outputs": ...} (columnar requests), with one output or
    several (then each entry is a dict and `output_bytes` is taken).
    """
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    if "error" in body:
        raise ServingError(body["error"])
    if "predictions" in body:
        return [_b64_value(value) for value in body["predictions"]]
    if "outputs" in body:
        outputs = body["outputs"]
        if isinstance(outputs, dict):
            outputs = outputs[OUTPUT]
        return [_b64_value(value) for value in outputs]
    raise ServingError(f"No 'predictions' or 'outputs' in the response: {str(body)[:200]}")


def rest_url(base_url, model, version=None):
    """http://host:8501/v1/models/MODEL[/versions/N]:predict"""
    url = f"{base_url.rstrip('/')}/v1/models/{model}"
    if version is not None:
        url += f"/versions/{version}"
    return url + ":predict"


def predict_rest(base_url, model, images, version=None, timeout=60.0):
    """Translates encoded `images` over REST; returns PNG bytes."""
    data = json.dumps(build_rest_request(images)).encode()
    request = urllib.request.Request(
        rest_url(base_url, model, version), data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return parse_rest_response(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except ValueError:
            pass
        raise ServingError(f"TF Serving answered HTTP {error.code}: {detail}") from None


# --- gRPC -------------------------------------------------------------------


def build_predict_request(images, model, signature=SIGNATURE, version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for encoded `images`."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    images = [bytes(image) for image in images]
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(images))]
        ),
        string_val=images,
    )
    request.inputs[INPUT].CopyFrom(tensor)
    return request


def parse_predict_response(response):
    """The PNG bytes in a `PredictResponse`, in request order."""
    if OUTPUT not in response.outputs:
        raise ServingError(f"No '{OUTPUT}' in the response; outputs: {sorted(response.outputs)}")
    return list(response.outputs[OUTPUT].string_val)


def predict_grpc(target, model, images, version=None, timeout=60.0):
    """Translates encoded `images` over gRPC (`target` is host:port); returns PNG bytes."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    options = [
        ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
    ]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(
                build_predict_request(images, model, version=version), timeout=timeout
            )
        except grpc.RpcError as error:
            raise ServingError(
                f"TF Serving answered {error.code().name}: {error.details()}"
            ) from None
    return parse_predict_response(response)


# --- command line -----------------------------------------------------------


def list_inputs(paths):
    """Image files among `paths` (folders are searched, sorted)."""
    files = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"No such file or folder: {path}")
    if not files:
        raise FileNotFoundError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {list(paths)}")
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="image files or folders")
    parser.add_argument("--model", default="cyclegan_a2b", help="TF Serving model name")
    parser.add_argument("--version", type=int, default=None, help="model version (default: latest)")
    parser.add_argument("--url", default="http://localhost:8501", help="REST base URL")
    parser.add_argument(
        "--grpc", metavar="HOST:PORT", default=None, help="use gRPC instead of REST"
    )
    parser.add_argument("--out", default="translated", help="folder for the PNGs")
    parser.add_argument("--batch", type=int, default=8, help="images per request")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args(argv)

    try:
        files = list_inputs(args.inputs)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(files), args.batch):
        batch = files[start : start + args.batch]
        images = [f.read_bytes() for f in batch]
        try:
            if args.grpc:
                pngs = predict_grpc(args.grpc, args.model, images, args.version, args.timeout)
            else:
                pngs = predict_rest(args.url, args.model, images, args.version, args.timeout)
        except (ServingError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        for path, png in zip(batch, pngs):
            target = out / f"{path.stem}_{args.model}.png"
            target.write_bytes(png)
            print(f"{path} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
