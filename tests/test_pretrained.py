"""The published generators by name: the table, downloads (resumed, checked), the cache,
`--model pretrained:NAME`, and the offline message.

The downloads come from a loopback HTTP server (127.0.0.1, a free port) that serves a
tiny generator of the authors' layout (the reference fixture a_resnet_ngf8_nb2, saved
with torch.save as the authors' files are), counts requests, honours Range and can cut
a response short. No test uses the network.
"""

import dataclasses
import hashlib
import http.server
import re
import socket
import threading

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DATA
from tfcyclegan import cli, pretrained
from tfcyclegan.export.runtime import load_translator

torch = pytest.importorskip("torch")  # the authors publish .pth files

REFERENCE = DATA / "reference" / "a_resnet_ngf8_nb2.npz"
ATOL = 1e-4  # float32 against the reference's float64-checked output (test_torch_import)

# The names in the authors' scripts/download_cyclegan_model.sh and download_pix2pix_model.sh.
CYCLEGAN_NAMES = (
    "apple2orange orange2apple summer2winter_yosemite winter2summer_yosemite horse2zebra zebra2horse "
    "monet2photo style_monet style_cezanne style_ukiyoe style_vangogh sat2map map2sat "
    "cityscapes_photo2label cityscapes_label2photo facades_photo2label facades_label2photo "
    "iphone2dslr_flower"
).split()
PIX2PIX_NAMES = "edges2shoes sat2map map2sat facades_label2photo day2night".split()

TINY = pretrained.PretrainedModel(
    name="tiny2test", method="cyclegan", translates="noise -> noise", dataset="none",
    path="tests/tiny2test.pth", netG="resnet_2blocks", ngf=8, norm="instance", dropout=False,
)


def _pth_bytes(state_dict, tmp_path):
    path = tmp_path / "made.pth"
    torch.save({key: torch.from_numpy(value) for key, value in state_dict.items()}, path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def fixture():
    return dict(np.load(REFERENCE))


@pytest.fixture(scope="module")
def weights(fixture, tmp_path_factory):
    state_dict = {key: value for key, value in fixture.items() if not key.startswith("__")}
    return _pth_bytes(state_dict, tmp_path_factory.mktemp("pth"))


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        state = self.server.state
        state.requests.append((self.path, self.headers.get("Range")))
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        asked = self.headers.get("Range")
        if asked:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        rest = body[start:]
        if state.cut_after is not None:  # announce the whole rest, send a part, hang up
            rest, state.cut_after = rest[: state.cut_after], None
        self.wfile.write(rest)

    def log_message(self, *args):
        pass


@dataclasses.dataclass
class _State:
    url: str
    files: dict = dataclasses.field(default_factory=dict)
    requests: list = dataclasses.field(default_factory=list)
    cut_after: int | None = None  # the next response stops after this many bytes


@pytest.fixture
def server(monkeypatch, tmp_path, weights):
    """The loopback server with TINY's file, the table with TINY, and a cache in tmp_path."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = _State(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state.files["/" + TINY.path] = weights
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv(pretrained.URL_ENV, httpd.state.url)
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(pretrained.MODELS, TINY.key, TINY)
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def _register(monkeypatch, **changes):
    record = dataclasses.replace(TINY, **changes)
    monkeypatch.setitem(pretrained.MODELS, TINY.key, record)
    return record


def _cache_files(tmp_path):
    """The cache's files and folders; a folder's lock stays once it holds a file, as a run folder's."""
    root = tmp_path / "cache"
    found = root.rglob("*") if root.exists() else []
    return sorted(str(p.relative_to(root)) for p in found if p.name != ".lock")


def _assert_reproduces(path, fixture):
    translator = load_translator(path)
    output = translator(fixture["__input__"].transpose(0, 2, 3, 1))
    np.testing.assert_allclose(output, fixture["__output__"].transpose(0, 2, 3, 1), rtol=0, atol=ATOL)


# --- The table ---------------------------------------------------------------------


def test_the_table_holds_the_authors_scripts_names_and_urls(monkeypatch):
    monkeypatch.delenv(pretrained.URL_ENV, raising=False)
    records = list(pretrained.MODELS.values())
    assert [r.name for r in records if r.method == "cyclegan"] == CYCLEGAN_NAMES
    assert [r.name for r in records if r.method == "pix2pix"] == PIX2PIX_NAMES
    assert pretrained.lookup("horse2zebra").url() == (
        "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth")
    assert pretrained.lookup("pix2pix/facades_label2photo").url() == (
        "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/facades_label2photo.pth")
    for record in records:
        resnet = record.method == "cyclegan"
        assert (record.netG, record.norm, record.dropout) == (
            ("resnet_9blocks", "instance", False) if resnet else ("unet_256", "batch", True))
        assert record.sha256 is None  # none is published; none is made up
        assert "BSD" in record.licence


def test_a_name_both_methods_publish_needs_its_method():
    with pytest.raises(ValueError, match=r"Two published generators are called 'sat2map': say "
                       r"cyclegan/sat2map .* or pix2pix/sat2map"):
        pretrained.lookup("sat2map")
    assert pretrained.lookup("cyclegan/sat2map").netG == "resnet_9blocks"


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"No published generator is called 'horse2zebar'\. Known: "
                       r"apple2orange, .*horse2zebra.*cyclegan/sat2map.*day2night"):
        pretrained.get("horse2zebar")


def test_pretrained_list(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv(pretrained.URL_ENV, raising=False)
    assert cli.main(["pretrained", "list", "--cache-dir", str(tmp_path)]) == cli.EXIT_OK
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line and not line[0].isupper()}
    assert set(rows) == ({n for n in CYCLEGAN_NAMES if n not in PIX2PIX_NAMES}
                         | {n for n in PIX2PIX_NAMES if n not in CYCLEGAN_NAMES}
                         | {f"{m}/{n}" for m in ("cyclegan", "pix2pix") for n in ("sat2map", "map2sat",
                                                                                 "facades_label2photo")})
    assert "horse -> zebra" in rows["horse2zebra"]
    assert "ResNet-9, ngf 64, instance norm, transposed-conv upsampling" in rows["horse2zebra"]
    assert "U-Net 256, ngf 64, batch norm" in rows["edges2shoes"]
    assert "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth" in out
    assert "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/NAME.pth" in out
    assert f"Licence: {pretrained.LICENCE}." in out
    assert "--model pretrained:NAME" in out


def test_the_cache_is_under_the_keras_home_unless_told(monkeypatch, tmp_path):
    monkeypatch.delenv(pretrained.CACHE_ENV, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert pretrained.cache_root() == tmp_path / "kh" / "tfcyclegan" / "pretrained"
    assert pretrained.cached_path(pretrained.lookup("pix2pix/sat2map")) == (
        tmp_path / "kh" / "tfcyclegan" / "pretrained" / "pix2pix" / "sat2map.keras")
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "env"))
    assert pretrained.cache_root() == tmp_path / "env"
    assert pretrained.cache_root(tmp_path / "arg") == tmp_path / "arg"


# --- Downloads -----------------------------------------------------------------------


def test_download_convert_and_translate(server, monkeypatch, tmp_path, weights, fixture):
    _register(monkeypatch, sha256=hashlib.sha256(weights).hexdigest())
    path = pretrained.get("tiny2test")
    assert path == tmp_path / "cache" / "cyclegan" / "tiny2test.keras"
    assert _cache_files(tmp_path) == ["cyclegan", "cyclegan/tiny2test.keras"]  # no .pth, no .part
    _assert_reproduces(path, fixture)
    assert server.requests == [("/tests/tiny2test.pth", None)]


def test_a_pix2pix_generator_normalizes_each_image_as_the_authors_test_py(server, monkeypatch, tmp_path):
    from tfcyclegan.networks import UnetGenerator
    from tfcyclegan.torch_import import export_state_dict, import_generator

    # The authors' pix2pix layout (U-Net 256, batch norm) at 2 filters.
    state_dict = export_state_dict(UnetGenerator(num_downs=8, ngf=2, norm="batch"))
    server.files["/pix2pix/tiny.pth"] = _pth_bytes(state_dict, tmp_path)
    record = dataclasses.replace(TINY, name="tiny", method="pix2pix", path="pix2pix/tiny.pth",
                                 netG="unet_256", ngf=2, norm="batch", dropout=True)
    monkeypatch.setitem(pretrained.MODELS, record.key, record)
    images = np.random.default_rng(0).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    expected = import_generator(state_dict)(images)  # bn_statistics="image", import-torch's default
    output = load_translator(pretrained.get("pix2pix/tiny"))(images)
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-5)


def test_a_cut_download_resumes_where_it_stopped(server, tmp_path, weights, fixture):
    server.cut_after = 100_000
    with pytest.raises(OSError, match=rf"stopped at 100000 of {len(weights)} bytes.*resume"):
        pretrained.get("tiny2test")
    assert _cache_files(tmp_path) == ["cyclegan", "cyclegan/tiny2test.pth.part"]
    path = pretrained.get("tiny2test")
    assert server.requests[-1] == ("/tests/tiny2test.pth", "bytes=100000-")
    _assert_reproduces(path, fixture)


def test_a_whole_part_left_before_its_rename_is_used(server, tmp_path, weights, fixture):
    part = tmp_path / "cache" / "cyclegan" / "tiny2test.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(weights)
    _assert_reproduces(pretrained.get("tiny2test"), fixture)
    assert server.requests == [("/tests/tiny2test.pth", f"bytes={len(weights)}-")]  # answered 416


def test_a_part_longer_than_the_file_is_started_again(server, tmp_path, weights, fixture):
    part = tmp_path / "cache" / "cyclegan" / "tiny2test.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(weights + b"stale")
    _assert_reproduces(pretrained.get("tiny2test"), fixture)
    assert [asked for _, asked in server.requests] == [f"bytes={len(weights) + 5}-", None]


@pytest.mark.parametrize("corruption, error, message", [
    ("sha256", ValueError, r"sha256 [0-9a-f]{64}, not the recorded 0{64}: not the published file"),
    ("keys", ValueError, r"(?s)did not give the published tiny2test generator .*missing keys \(1\): model.12.bias"),
    ("not a state_dict", ValueError, r"did not give the published tiny2test generator"),
    ("architecture", ValueError, r"`ngf` does not match the file"),
])
def test_a_file_that_is_not_the_published_one_is_refused_and_not_cached(
        server, monkeypatch, tmp_path, fixture, corruption, error, message):
    if corruption == "sha256":
        _register(monkeypatch, sha256="0" * 64)
    elif corruption == "keys":
        state_dict = {k: v for k, v in fixture.items() if not k.startswith("__") and k != "model.12.bias"}
        server.files["/" + TINY.path] = _pth_bytes(state_dict, tmp_path)
    elif corruption == "not a state_dict":
        server.files["/" + TINY.path] = b"<html>Moved</html>"
    else:
        _register(monkeypatch, ngf=16)
    with pytest.raises(error, match=message):
        pretrained.get("tiny2test")
    assert _cache_files(tmp_path) == []  # no .keras, no .pth, no .part, no empty folder


def test_a_truncated_download_is_not_cached(server, tmp_path):
    server.cut_after = 1000
    with pytest.raises(OSError, match="stopped at 1000 of"):
        pretrained.get("tiny2test")
    assert not (tmp_path / "cache" / "cyclegan" / "tiny2test.keras").exists()
    assert not (tmp_path / "cache" / "cyclegan" / "tiny2test.pth").exists()


def test_a_cached_model_needs_no_request(server):
    first = pretrained.get("tiny2test")
    second = pretrained.get("tiny2test")
    assert first == second
    assert len(server.requests) == 1


def test_offline_names_the_url_and_import_torch(server, monkeypatch, tmp_path, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv(pretrained.URL_ENV, closed)
    url = f"{closed}/tests/tiny2test.pth"
    with pytest.raises(OSError, match=rf"Could not download {re.escape(url)} .*"
                       r"tfcyclegan import-torch tiny2test\.pth --out tiny2test\.keras"):
        pretrained.get("tiny2test")
    assert cli.main(["pretrained", "get", "tiny2test"]) == cli.EXIT_FAILED
    assert url in capsys.readouterr().err
    assert _cache_files(tmp_path) == []


# --- --model pretrained:NAME ----------------------------------------------------------


def test_model_pretrained_name_in_translate(server, tmp_path, rng):
    image = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "a.png")
    for out in ("out1", "out2"):
        code = cli.main(["translate", "--model", "pretrained:tiny2test", "--input", str(tmp_path / "in"),
                         "--out", str(tmp_path / out)])
        assert code == cli.EXIT_OK
        assert Image.open(tmp_path / out / "a.png").size == (20, 24)
    assert len(server.requests) == 1  # the second run used the cache
    # The same as the cached file given by its path.
    code = cli.main(["translate", "--model", str(tmp_path / "cache" / "cyclegan" / "tiny2test.keras"),
                     "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out3")])
    assert code == cli.EXIT_OK
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out1" / "a.png")),
                                  np.asarray(Image.open(tmp_path / "out3" / "a.png")))


def test_model_pretrained_unknown_name(server, tmp_path, capsys):
    code = cli.main(["translate", "--model", "pretrained:zebra", "--input", str(tmp_path),
                     "--out", str(tmp_path / "out")])
    assert code == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "No published generator is called 'zebra'. Known: apple2orange" in err
    assert "tiny2test" in err


def test_pretrained_get_prints_the_cached_file(server, tmp_path, capsys):
    assert cli.main(["pretrained", "get", "tiny2test"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "Downloading " + server.url + "/tests/tiny2test.pth" in out
    assert out.strip().splitlines()[-1] == str(tmp_path / "cache" / "cyclegan" / "tiny2test.keras")


@pytest.mark.parametrize("command, library", [
    (["translate", "--input", "in", "--out", "out"], ("tfcyclegan.translate", "translate_files")),
    (["export", "--out", "exported"], ("tfcyclegan.export", "export")),
    (["evaluate", "--data", "data"], ("tfcyclegan.evaluate", "evaluate")),
])
def test_every_model_flag_takes_a_pretrained_name(command, library, monkeypatch, tmp_path):
    import importlib

    resolved = tmp_path / "horse2zebra.keras"
    monkeypatch.setattr(pretrained, "get", lambda name, **kwargs: resolved if name == "horse2zebra" else None)
    received = []

    def spy(model, *args, **kwargs):
        received.append(model)
        raise ValueError("spied")

    monkeypatch.setattr(importlib.import_module(library[0]), library[1], spy)
    assert cli.main([command[0], "--model", "pretrained:horse2zebra", *command[1:]]) == cli.EXIT_FAILED
    assert received == [str(resolved)]


@pytest.mark.parametrize("argv, message", [
    (["pretrained", "get"], "Say which generator: tfcyclegan pretrained get NAME"),
    (["pretrained", "list", "horse2zebra"], "`pretrained list` takes no name. Received: 'horse2zebra'"),
])
def test_pretrained_command_errors(argv, message, capsys):
    assert cli.main(argv) == cli.EXIT_FAILED
    assert message in capsys.readouterr().err
