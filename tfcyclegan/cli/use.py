"""The commands that use a trained model (`--model`, any artifact): `translate`, `export`, `evaluate`, `app`."""

import os
import sys

from tfcyclegan.cli import args as shared
from tfcyclegan.cli.args import EXIT_FAILED, EXIT_OK

# === translate ===


def add_translate(subparsers):
    p = subparsers.add_parser(
        "translate",
        help="translate an image or a folder of images",
        description="Translate images of any size; writes them under --out with the same names.",
    )
    shared.add_model_artifact(p)
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    shared.add_out(p, required=True, help="folder for the translated images", old=("--output",))
    shared.add_direction(p)
    p.add_argument("--batch-size", type=int, default=4, help="images of one size translated together")
    p.add_argument("--threads", type=int, help="CPU threads for a .tflite or .onnx model (default: all)")
    p.add_argument("--load-size", type=int, metavar="N",
                   help="first resize each image so its short side is N px (bicubic; default: keep sizes)")
    p.add_argument("--tile", type=int, metavar="PX",
                   help="translate in PX x PX tiles with blended seams (bounded memory; 0: never). "
                   "Default: tiles of 1024 for images above 1.5 megapixels (docs/large_images.md)")
    p.add_argument("--tile-overlap", type=int, default=64, metavar="PX", help="pixels shared by neighbouring tiles (64)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files already in --out under an output name (refused otherwise)")
    shared.add_run_state(p)
    p.set_defaults(run=_translate)


def _translate(args):
    from tfcyclegan import translate

    report = translate.translate_files(
        args.model, args.input, args.out, direction=args.direction, batch_size=args.batch_size,
        num_threads=args.threads, load_size=args.load_size, tile=args.tile, tile_overlap=args.tile_overlap,
        checkpoint=args.checkpoint, epoch=args.epoch, overwrite=args.overwrite,
    )
    print(report.summary())
    return EXIT_OK if not report.failed else EXIT_FAILED


# === export ===


def add_export(subparsers):
    p = subparsers.add_parser(
        "export",
        help="export generators as a SavedModel (TF Serving), TFLite files (phones) or ONNX, parity-checked",
        description="Export G and/or F for deployment. Every artifact is compared with the Keras "
        "model; the report is printed and saved as OUT/export_report.json. A colour generator "
        "(--netG color) also becomes a .cube 3D LUT (OUT/cube/NAME_a2b.cube) for colour tools; "
        "--format onnx writes OUT/onnx/NAME_a2b.onnx (opset 17) for onnxruntime and OpenVINO.",
    )
    shared.add_model_artifact(p, help="a run folder or .keras file (CycleGAN, pix2pix or one generator)")
    shared.add_out(p, required=True, help="export folder")
    p.add_argument("--format", dest="formats", action="append",
                   choices=("saved_model", "tflite", "onnx", "cube", "web"),
                   help="repeat for several; default saved_model and tflite, and cube (a 3D LUT) for a "
                        "colour generator, the only one a LUT can carry; onnx (onnxruntime, OpenVINO) "
                        "only when asked for: pip install 'tfcyclegan[onnx]'; web: a page translating "
                        "photos in the browser (OUT/web, served by `tfcyclegan app --model OUT`)")
    shared.add_direction(p, default="both", both=True)
    p.add_argument("--tflite-mode", dest="tflite_modes", action="append",
                   choices=("fp32", "fp16", "dynamic_int8", "int8"),
                   help="repeat for several; default fp32, fp16 (+ int8 with --representative-data); "
                        "dynamic_int8 (smallest file, ~4x slower than fp32 on CPUs) only when asked for")
    p.add_argument("--tflite-io", action="append", choices=("float32", "uint8"),
                   help="float32: [-1, 1] tensors; uint8: camera pixels in and out (default both)")
    p.add_argument("--representative-data", help="folder of images for int8 calibration and the parity check")
    p.add_argument("--allow-lossy-int8", action="store_true",
                   help="write full int8 files even where instance-norm equalization cannot apply "
                        "(far below float32 quality); by default such a file is an error")
    p.add_argument("--tflite-input-size", type=shared.size_pair, metavar="HxW",
                   help="fixed input size (GPU delegates); default dynamic")
    _add_web_mode(p)
    p.add_argument("--model-name", help="artifact name prefix (default: cyclegan or pix2pix -> cyclegan_a2b)")
    p.add_argument("--version", type=int, default=1, help="SavedModel version folder (TF Serving)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version or file")
    p.add_argument("--no-parity", dest="parity", action="store_false", help="skip the parity check")
    p.add_argument("--parity-size", type=shared.size_pair, metavar="HxW",
                   help="parity image size (default: training size)")
    p.add_argument("--max-pixels", type=int, help="the SavedModel refuses larger images (default 2048x2048)")
    p.add_argument("--max-batch-size", type=int, help="the SavedModel refuses larger requests (default 64)")
    p.add_argument("--saved-model-dtype", default="float32", choices=("float32", "bfloat16"),
                   help="the SavedModel's arithmetic: bfloat16 is ~2x faster on CPUs with AVX512_BF16/AMX "
                   "(slower without), PSNR vs float32 reported (default float32)")
    shared.add_run_state(p)
    p.set_defaults(run=_export)


def _export(args):
    from tfcyclegan import export

    kwargs = dict(
        direction=args.direction,
        representative_data=args.representative_data,
        tflite_input_size=args.tflite_input_size,
        model_name=args.model_name,
        version=args.version,
        overwrite=args.overwrite,
        parity=args.parity,
        parity_size=args.parity_size,
        saved_model_dtype=args.saved_model_dtype,
        allow_lossy_int8=args.allow_lossy_int8,
        web_mode=args.web_mode,
    )
    # Flags left out keep the library's defaults, which live in one place.
    optional = dict(max_pixels=args.max_pixels, max_batch_size=args.max_batch_size, formats=args.formats,
                    tflite_modes=args.tflite_modes, tflite_io=args.tflite_io)
    kwargs.update({name: tuple(v) if isinstance(v, list) else v for name, v in optional.items() if v is not None})
    model = args.model
    if args.checkpoint is not None or args.epoch is not None:
        from tfcyclegan.export import loading

        model = loading.load_keras(args.model, checkpoint=args.checkpoint, epoch=args.epoch)
    try:
        report = export.export(model, args.out, **kwargs)
    except RuntimeError as error:  # a parity bound exceeded, a lossy int8 file refused (report written)
        print(f"tfcyclegan export: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if report.ok else EXIT_FAILED


# === evaluate ===


def add_evaluate(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="measure a model on a test split: FID/KID, and PSNR/SSIM/L1 with ground truth",
        description="Translate the test split of --data with any model form (run folder, .keras, "
        "SavedModel, .tflite) and measure it. With ground truth, the untouched inputs are scored too, "
        "and a warning line says when the translations score below them. Writes evaluation.json, "
        "evaluation.md, per_image.csv and cases.png (the worst and best translations).",
    )
    shared.add_model_artifact(p)
    p.add_argument("--data", required=True, help="dataset root with test/ (aligned A|B) or testA/ testB/")
    shared.add_direction(p)
    shared.add_out(p, help="folder for the results (default: RUN/evaluation for a run folder, else ./evaluation)")
    p.add_argument("--image-size", type=int, help="test images are resized to this (default: training size)")
    p.add_argument("--fid-weights", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or .npz / "
                                         ".safetensors of it); default: downloaded once into the Keras cache")
    # Three states, as evaluate(fid=None | True | False): by default FID/KID are
    # computed when the weights can be had and skipped with a note when not
    # (offline), so the other metrics are never lost to a missing download.
    fid = p.add_mutually_exclusive_group()
    fid.add_argument("--fid", dest="fid", action="store_const", const=True, default=None,
                     help="require FID and KID: fail when the weights cannot be had (default: computed "
                          "when they can, skipped with a note when not)")
    fid.add_argument("--no-fid", dest="fid", action="store_const", const=False, help="skip FID and KID")
    p.add_argument("--max-images", type=int, help="evaluate at most this many test images")
    shared.add_run_state(p)
    p.set_defaults(run=_evaluate)


def _evaluate(args):
    from tfcyclegan import evaluate

    out = args.out
    if out is None:
        is_run = os.path.isfile(os.path.join(args.model, "config.json"))
        out = os.path.join(args.model, "evaluation") if is_run else "evaluation"
    evaluate.evaluate(
        args.model, args.data, args.direction, out_dir=out, image_size=args.image_size,
        fid=args.fid, fid_weights=args.fid_weights, max_images=args.max_images,
        checkpoint=args.checkpoint, epoch=args.epoch,
    )
    print(f"Wrote {out}/")
    return EXIT_OK


# === app ===


def _add_web_mode(p):
    p.add_argument("--web-mode", default="fp16", choices=("fp32", "fp16", "int8"),
                   help="the web page's .tflite files: fp16 (default: half the download at fp32 quality), "
                        "fp32, or int8 (needs --representative-data)")


def add_app(subparsers):
    p = subparsers.add_parser(
        "app",
        help="serve a page that translates photos in the browser (LiteRT.js) on localhost",
        description="Open a model's web page: a photo picked or dropped is translated in the browser "
        "(LiteRT.js, WebAssembly or WebGPU), shown beside the input with the time taken and a download "
        "button. A run folder or .keras file is first exported once into a cache "
        "(<Keras home>/tfcyclegan/web, or $TFCYCLEGAN_WEB_DIR); an export folder made with "
        "--format web is served as it is. The server listens on 127.0.0.1 only; Ctrl-C stops it.",
    )
    shared.add_model_artifact(p, help="a run folder, .keras file, or an export folder with a web page "
                                      "(tfcyclegan export --format web)")
    shared.add_direction(p, default="both", both=True)
    _add_web_mode(p)
    p.add_argument("--tflite-input-size", type=shared.size_pair, metavar="HxW",
                   help="the page's tile: the fixed input size of its .tflite files (default: the training "
                        "size, else 256x256)")
    p.add_argument("--representative-data", help="folder of images for --web-mode int8 calibration")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    shared.add_run_state(p)
    p.set_defaults(run=_app)


def _app(args):
    from tfcyclegan import app

    folder = app.web_folder(
        args.model, direction=args.direction, web_mode=args.web_mode,
        tflite_input_size=args.tflite_input_size, representative_data=args.representative_data,
        checkpoint=args.checkpoint, epoch=args.epoch,
    )
    server = app.serve(folder, port=args.port)
    print(f"Serving {folder}\nOpen {app.url_of(server)} in a browser (Ctrl-C stops).", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_OK
