"""``sesim view`` without a browser: the maps it serves, steps and styles, the HTTP surface (path
traversal, Host check), every bad input as one clear line, and Ctrl-C."""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import socket
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.cli import main
from sesim.data.images import pil_to_tensor
from sesim.translate import translate_paths
from sesim.viz.heatmap import _nan_cosine, feature_position, pair_maps
from sesim.view.inputs import load_inputs, run_images
from sesim.view.runs import ViewError, ViewRun
from sesim.view.server import ViewServer, build_session
from view_fixtures import start_view

def png_tensor(data: bytes) -> torch.Tensor:
    return pil_to_tensor(Image.open(io.BytesIO(data)).convert("RGB"))


def grid(values: list, h: int, w: int) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64).reshape(h, w)


# ------------------------------------------------------------------------------------- maps
def test_clicked_maps_are_the_loss_own_maps_and_its_per_query_distance(view_runs):
    session = build_session([view_runs.fsesim])
    run = session.runs[0]
    x = session.images[0].image
    y = png_tensor(session.translation_png(0, 0, (run.latest, 0), warm=False))
    y_exact = run.translate(x, run.latest)
    assert (y - y_exact).abs().max() <= 1 / 127.5 + 1e-6  # the PNG is the translation, quantised
    for layer in run.layers:
        for point in ((3, 5), (20, 27)):
            answer = session.query(0, point, layer, "run")
            panels = {p["kind"]: p for p in answer["panels"]}
            h, w = panels["input"]["h"], panels["input"]["w"]
            cell = feature_position(point, tuple(x.shape[-2:]), (h, w))
            hx, hy = pair_maps(run.structure, x, y_exact, layer, cell)  # through the loss's own maps()
            got_x, got_y = grid(panels["input"]["values"], h, w), grid(panels["translation"]["values"], h, w)
            assert np.array_equal(np.isnan(got_x), np.isnan(hx)) and np.isfinite(got_x).sum() == 16  # 4 x 4 window
            np.testing.assert_allclose(got_x, hx, atol=1e-4)
            np.testing.assert_allclose(got_y, hy, atol=1e-4)
            assert (panels["input"]["row"], panels["input"]["col"]) == cell
            assert answer["losses"][0]["value"] == pytest.approx(1 - _nan_cosine(hx, hy), abs=1e-4)


def test_global_and_local_modes_and_two_points_differ(view_runs):
    session = build_session([view_runs.fsesim])
    local = session.query(0, (16, 16), "relu3_1", "local")["panels"][0]
    whole = session.query(0, (16, 16), "relu3_1", "global")["panels"][0]
    other = session.query(0, (2, 30), "relu3_1", "global")["panels"][0]
    assert local["window"] == 4 and sum(v is not None for v in local["values"]) == 16
    assert whole["window"] is None and None not in whole["values"] and len(whole["values"]) == 64
    assert whole["values"] != other["values"]
    # centred-L2 cosine maps: the query is most like itself
    for panel in (whole, other):
        values = grid(panel["values"], 8, 8)
        assert values[panel["row"], panel["col"]] == pytest.approx(1.0, abs=1e-4) == np.nanmax(values)


def test_error_maps_per_run_and_layers_follow_each_run(view_runs):
    session = build_session([view_runs.fsesim, view_runs.gan_only])
    errors = session.errors(0)
    assert [p["run"] for p in errors["panels"]] == [0, 1]
    for panel in errors["panels"]:
        values = grid(panel["values"], panel["h"], panel["w"])
        assert np.isfinite(values).all() and (values >= 0).all()
        assert panel["mean"] == pytest.approx(values.mean(), abs=1e-4) and panel["hi"] == pytest.approx(values.max(), abs=1e-5)
    answer = session.query(1, (8, 8), "relu4_1", "run")
    # the GAN-only run is drawn by the pretrained fallback: its layer at the same position
    fallback_layers = ViewRun(view_runs.gan_only).structure.layers
    assert [(p["kind"], p["run"], p["layer"]) for p in answer["panels"]] == [
        ("input", 0, "relu4_1"), ("translation", 0, "relu4_1"), ("translation", 1, fallback_layers[1])]
    assert len(answer["losses"]) == 2
    with pytest.raises(ViewError, match="unknown layer"):
        session.query(0, (1, 1), "conv9", "run")
    with pytest.raises(ViewError, match="outside"):
        session.query(0, (32, 1), "relu3_1", "run")


def test_run_without_a_structure_loss_is_drawn_by_the_labelled_fallback(view_runs):
    first, second = ViewRun(view_runs.gan_only), ViewRun(view_runs.gan_only)
    assert not first.own_loss and "not the run's" in first.loss_note
    assert first.structure.extractor.weights_source == "imagenet"  # pretrained, never random
    assert "EfficientNet-Lite0 (ImageNet)" in first.loss_note or "VGG16 (ImageNet)" in first.loss_note
    assert first.describe()["layers"] == list(first.structure.layers)
    own = ViewRun(view_runs.fsesim)
    assert own.own_loss and own.loss_note.startswith("the run's own loss: FSeSim of run fsesim")
    x = run_images(first)[0].image
    a = first.structure.structure_features(x[None])
    b = second.structure.structure_features(x[None])
    assert all(torch.equal(a[n], b[n]) for n in a)  # the same instrument on every start


# ------------------------------------------------------------------------------ steps, styles
def test_steps_come_from_weights_files_and_sample_snapshots(view_runs):
    run = ViewRun(view_runs.fsesim)
    assert {s: (st.weights is not None, st.snapshot is not None) for s, st in run.steps.items()} == {
        2: (True, True), 4: (True, True)}
    assert run.latest == 4
    x = run_images(run)[1].image
    at2, at4 = run.translate(x, 2), run.translate(x, 4)
    assert (at2 - at4).abs().max() > 0.01
    run.steps[2].weights = None  # the step as a run without intermediate weights has it: the grid only
    from_grid = run.translate(x, 2)
    assert (from_grid - at2).abs().max() <= 1 / 127.5 + 1e-6  # the grid's cell is that translation, quantised
    other = torch.rand(3, 32, 32) * 2 - 1
    with pytest.raises(ViewError, match="only a sample snapshot"):
        run.translate(other, 2)
    with pytest.raises(ViewError, match="no step 3"):
        run.translate(x, 3)
    with pytest.raises(ViewError, match="not multimodal"):
        run.translate(x, 4, style=1)


def test_sample_images_come_from_the_grid_when_the_data_folder_is_gone(view_runs, tmp_path):
    run_dir = tmp_path / "moved"
    shutil.copytree(view_runs.fsesim, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    from_data = [im.image for im in run_images(ViewRun(run_dir))]
    config["data"]["data"] = str(tmp_path / "gone")
    (run_dir / "config.json").write_text(json.dumps(config))
    from_grid = [im.image for im in run_images(ViewRun(run_dir))]
    assert len(from_grid) == len(from_data) == 2
    for a, b in zip(from_grid, from_data):
        assert (a - b).abs().max() <= 1 / 127.5 + 1e-6


def test_multimodal_styles_match_translate_samples_and_style_from(view_runs, tmp_path):
    source = view_runs.data / "testA"
    out = tmp_path / "out"
    # one image per pass, as the view translates: oneDNN's convolutions may round differently for
    # another batch size, and one flipped 8-bit level would fail the exact comparison below
    translate_paths(view_runs.multimodal, source, out, samples=3, seed=0, progress=False, batch_size=1)
    first = sorted(source.iterdir())[0]
    session = build_session([view_runs.multimodal], first, size=0)
    run = session.runs[0]
    assert run.describe()["multimodal"] and session.default_variant(run) == (2, 0)
    for k in range(3):
        png = session.translation_png(0, 0, (2, k), warm=False)
        expected = np.asarray(Image.open(out / f"{first.stem}_s{k}.png").convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), expected)
    ref = sorted((view_runs.data / "testB").iterdir())[0]
    styled = build_session([view_runs.multimodal], first, size=0, style_from=ref)
    assert styled.default_variant(styled.runs[0]) == (2, "ref")
    y_ref = png_tensor(styled.translation_png(0, 0, (2, "ref"), warm=False))
    y_0 = png_tensor(session.translation_png(0, 0, (2, 0), warm=False))
    assert (y_ref - y_0).abs().max() > 0.01
    with pytest.raises(ViewError, match="no --style-from"):
        session.translation_png(0, 0, (2, "ref"))


def test_input_folder_skips_unreadable_files_and_resizes(view_runs, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((40, 80, 3), np.uint8)).save(folder / "wide.png")
    (folder / "broken.png").write_bytes(b"not an image")
    images = load_inputs(folder, 3, 32)
    assert [im.name for im in images] == ["wide.png"] and tuple(images[0].image.shape) == (3, 16, 32)
    assert tuple(load_inputs(folder / "wide.png", 3, 0)[0].image.shape) == (3, 40, 80)
    with pytest.raises(ViewError, match="could be read"):
        (folder / "wide.png").unlink()
        load_inputs(folder, 3, 32)


# ---------------------------------------------------------------------------------- the server
@pytest.fixture(scope="module")
def server(view_runs):
    srv = ViewServer(build_session([view_runs.fsesim, view_runs.gan_only]), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def raw_get(srv, path: str, host: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    """Send ``path`` exactly as written (no client-side normalisation)."""
    port = srv.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_only_the_page_and_the_api_are_served_no_path_traversal(server, view_runs):
    config = (view_runs.fsesim / "config.json").resolve()
    secret = config.read_bytes()[:40]
    attempts = [
        "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
        "/static/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/..%2f..%2f..%2fetc%2fpasswd", "//etc/passwd", "/etc/passwd",
        "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", f"/{config}", f"/static/{config}", f"/static/..{config}",
        "/config.json", "/runs/fsesim/config.json", "/static/view.js/../../config.json", "/static/./view.js/..",
        "/api/image?image=../config.json", f"/api/image?image={config}", "/api/translation?image=0&run=../x",
        "/api/../static/view.js", "/static/view.js%00.html", "/static/", "/static",
    ]
    for path in attempts:
        status, body = raw_get(server, path)
        assert status in (400, 404), (path, status)
        assert b"root:" not in body and secret not in body and b"function" not in body, path
    status, body = raw_get(server, "/static/view.js")
    assert status == 200 and b"sesimView" in body
    status, body = raw_get(server, "/")
    assert status == 200 and b"<title>sesim view</title>" in body


def test_host_header_and_methods_are_checked(server):
    assert raw_get(server, "/api/info", host="attacker.example:80")[0] == 403
    assert raw_get(server, "/api/info", host=f"localhost:{server.server_address[1]}")[0] == 200
    assert raw_get(server, "/api/info", method="POST")[0] == 405
    assert server.server_address[0] == "127.0.0.1"


def test_api_answers(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)

    def get(path):
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()

    status, body = get("/api/info")
    info = json.loads(body)
    assert status == 200 and [r["name"] for r in info["runs"]] == ["fsesim", "gan-only"]
    assert len(info["ramp"]) == 256 and info["runs"][0]["steps"] == [{"step": 2, "kind": "weights"},
                                                                       {"step": 4, "kind": "weights"}]
    status, body = get("/api/translation?image=1&run=1")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (32, 32)
    a = json.loads(get("/api/map?image=1&x=5&y=9&layer=relu3_1&step0=2")[1])
    b = json.loads(get("/api/map?image=1&x=5&y=9&layer=relu4_1&step0=2")[1])
    assert a["variants"][0]["step"] == 2 and (a["panels"][0]["h"], b["panels"][0]["h"]) == (8, 4)
    status, body = get("/api/map?image=1&x=5&y=9&layer=relu3_1&step0=3")
    assert status == 400 and b"no step 3" in body
    status, body = get("/api/map?image=1&x=five&y=9")
    assert status == 400 and b"must be an integer" in body
    status, body = get("/api/error?image=0")
    assert status == 200 and len(json.loads(body)["panels"]) == 2
    conn.close()


# ------------------------------------------------------------------------------- bad inputs
def one_line_error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    line = err[-1]
    assert line.startswith("sesim view: error: ")
    return line


def test_bad_run_folders_give_one_clear_line(view_runs, tmp_path, capsys):
    view = ["view", "--no-open", "--port", "0", "--run"]
    assert "does not exist" in one_line_error(capsys, view + [str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    assert "not a sesim run folder" in one_line_error(capsys, view + [str(tmp_path / "empty")])
    no_ckpt = tmp_path / "no-ckpt"
    no_ckpt.mkdir()
    shutil.copy(view_runs.fsesim / "config.json", no_ckpt)
    assert "checkpoint.pt not found" in one_line_error(capsys, view + [str(no_ckpt)])
    broken = tmp_path / "broken"
    shutil.copytree(view_runs.fsesim, broken)
    (broken / "checkpoint.pt").write_bytes(os.urandom(300))
    assert "could not be loaded" in one_line_error(capsys, view + [str(broken)])
    (broken / "config.json").write_text("{not json")
    assert "could not be loaded" in one_line_error(capsys, view + [str(broken)])


def test_bad_images_options_and_a_busy_port_give_one_clear_line(view_runs, tmp_path, capsys):
    run = ["view", "--no-open", "--run", str(view_runs.fsesim)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    assert "bad.png" in one_line_error(capsys, run + ["--port", "0", "--input", str(bad)])
    assert "does not exist" in one_line_error(capsys, run + ["--port", "0", "--input", str(tmp_path / "none.png")])
    assert "multimodal" in one_line_error(capsys, run + ["--port", "0", "--style-from", str(
        sorted((view_runs.data / "testB").iterdir())[0])])
    with pytest.raises(SystemExit) as info:  # out of range: rejected while parsing, like every numeric flag
        main(run + ["--port", "70000"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("sesim view: error: argument --port") and "65535" in err[-1]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(capsys, run + ["--port", str(port)])
    assert f"port {port} on 127.0.0.1 is already in use" in line


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_command_prints_its_url_and_stops_cleanly(view_runs, sig):
    proc, url = start_view(["--run", str(view_runs.fsesim)])
    try:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", "/api/info")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "sesim view: stopped" in out and "Traceback" not in err
