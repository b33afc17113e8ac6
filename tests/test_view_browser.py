"""``sesim view`` in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
driven by Selenium, against the ``sesim view`` command on two tiny trained runs.

Skipped with the reason when Chromium, its driver or Selenium is missing; with
``SESIM_REQUIRE_BROWSER=1`` (set by ``.ci/run``) it fails instead. Nothing is downloaded: the
driver path is given explicitly, so selenium-manager never runs.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from headless_chromium import chromium, click, missing_reason, wait_for
from view_fixtures import start_view

@pytest.fixture(scope="module")
def browser():
    missing = missing_reason()
    if missing:
        if os.environ.get("SESIM_REQUIRE_BROWSER", "") not in ("", "0"):
            pytest.fail(f"SESIM_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(f"no headless browser: {missing}")
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def view_url(view_runs):
    """The real command, ``sesim view --run FSESIM --run GAN_ONLY``, in a child process."""
    proc, url = start_view(["--run", str(view_runs.fsesim), "--run", str(view_runs.gan_only)])
    yield url
    proc.terminate()
    proc.communicate(timeout=60)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def canvas_pixels(driver, index: int) -> np.ndarray:
    """The heat canvas of panel ``index`` as ``(H, W, 3)`` uint8 (read losslessly through PNG)."""
    data = driver.execute_script(f"return sesimView.panels[{index}].heat.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("RGB"))


def expected_pixels(image: np.ndarray, panel: dict, scale: int, ramp: np.ndarray, alpha: float) -> np.ndarray:
    """What the page must draw: ``image`` enlarged ``scale`` times (nearest), each feature cell's
    ramp colour blended over its block where the map has a value (the rule in view.js)."""
    big = image.repeat(scale, 0).repeat(scale, 1).astype(np.float64)
    height, width = image.shape[:2]
    rows = (np.arange(big.shape[0]) // scale) * panel["h"] // height
    cols = (np.arange(big.shape[1]) // scale) * panel["w"] // width
    values = np.array([np.nan if v is None else v for v in panel["values"]]).reshape(panel["h"], panel["w"])
    v = values[rows[:, None], cols[None, :]]
    t = np.clip((np.nan_to_num(v) - panel["lo"]) / max(panel["hi"] - panel["lo"], 1e-12), 0, 1)
    colour = ramp[np.floor(t * 255 + 0.5).astype(int)]
    out = np.where(np.isfinite(v)[..., None], np.round(big * (1 - alpha) + colour * alpha), big)
    return out.astype(np.uint8)


def test_clicks_layers_second_run_error_map_steps_and_download(browser, view_url, view_runs, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(view_url)
    wait_for(driver, "return window.sesimView && sesimView.ready")
    info = json.loads(fetch(view_url + "api/info"))
    ramp, alpha = np.array(info["ramp"], np.float64), info["alpha"]
    # three panels: the input, run 1's translation, run 2's (the second run shows up, labelled)
    kinds = driver.execute_script("return sesimView.panels.map(p => [p.kind, p.run])")
    assert kinds == [["input", 0], ["translation", 0], ["translation", 1]]
    header = driver.find_element(By.ID, "runs").text
    assert "fsesim" in header and "gan-only" in header and "not the run's" in header
    image = np.asarray(Image.open(io.BytesIO(fetch(view_url + "api/image?image=0"))).convert("RGB"))
    second = np.asarray(Image.open(io.BytesIO(fetch(view_url + "api/translation?image=0&run=1"))).convert("RGB"))
    scale = driver.execute_script("return sesimView.panels[0].scale")
    assert scale * 32 == driver.execute_script("return sesimView.panels[0].heat.width")
    before = canvas_pixels(driver, 0)
    assert np.array_equal(before, image.repeat(scale, 0).repeat(scale, 1))
    assert np.array_equal(canvas_pixels(driver, 2), second.repeat(scale, 0).repeat(scale, 1))

    marks = driver.find_elements(By.CSS_SELECTOR, "canvas.marks")
    drawn = {}
    for point in ((6, 9), (25, 22)):
        draws = driver.execute_script("return sesimView.draws")
        click(driver, marks[0], point, scale)
        wait_for(driver, f"return sesimView.draws > {draws} && sesimView.point && sesimView.point.x === {point[0]}"
                         f" && sesimView.lastMap.x === {point[0]} && !sesimView.inflight")
        answer = json.loads(fetch(view_url + driver.execute_script("return sesimView.lastUrl").lstrip("/")))
        assert (answer["x"], answer["y"]) == point
        pixels = canvas_pixels(driver, 0)
        panel = answer["panels"][0]
        expected = expected_pixels(image, panel, scale, ramp, alpha)
        assert np.abs(pixels.astype(int) - expected).max() <= 2  # the map, where the map says
        has_value = np.array([v is not None for v in panel["values"]]).reshape(panel["h"], panel["w"])
        cells = (np.arange(32 * scale) // scale) * panel["h"] // 32  # square image and map: rows = cols
        inside = has_value[cells[:, None], cells[None, :]]
        assert np.array_equal(pixels[~inside], before[~inside])  # outside the window: untouched
        assert (np.abs(pixels[inside].astype(int) - before[inside]).sum(-1) > 0).mean() > 0.9
        loss_caption = driver.find_elements(By.CSS_SELECTOR, "figcaption")[2].text
        assert f"{answer['losses'][1]['value']:.4f}" in loss_caption
        drawn[point] = pixels
    assert np.abs(drawn[(6, 9)].astype(int) - drawn[(25, 22)]).sum(-1).astype(bool).mean() > 0.2

    # the layer control changes the request and the drawing
    draws = driver.execute_script("return sesimView.draws")
    Select(driver.find_element(By.ID, "layer")).select_by_value("relu4_1")
    wait_for(driver, f"return sesimView.draws > {draws} && sesimView.lastMap.layer === 'relu4_1'")
    assert "layer=relu4_1" in driver.execute_script("return sesimView.lastUrl")
    answer = driver.execute_script("return sesimView.lastMap")
    assert answer["panels"][0]["h"] == 4
    expected = expected_pixels(image, answer["panels"][0], scale, ramp, alpha)
    assert np.abs(canvas_pixels(driver, 0).astype(int) - expected).max() <= 2
    driver.save_screenshot(str(tmp_path / "view.png"))
    if os.environ.get("SESIM_VIEW_SCREENSHOT"):
        driver.save_screenshot(os.environ["SESIM_VIEW_SCREENSHOT"])
    assert Image.open(tmp_path / "view.png").size[0] > 500

    # the error map of the whole image, over both translations
    draws = driver.execute_script("return sesimView.draws")
    driver.find_element(By.ID, "errormap").click()
    wait_for(driver, f"return sesimView.draws > {draws} && sesimView.lastError !== null")
    errors = driver.execute_script("return sesimView.lastError")
    assert [p["run"] for p in errors["panels"]] == [0, 1]
    translation = np.asarray(Image.open(io.BytesIO(fetch(view_url + "api/translation?image=0&run=1"))).convert("RGB"))
    expected = expected_pixels(translation, errors["panels"][1], scale, ramp, alpha)
    assert np.abs(canvas_pixels(driver, 2).astype(int) - expected).max() <= 2
    driver.find_element(By.ID, "errormap").click()

    # the step slider of run 1 (weights at steps 2 and 4)
    slider = driver.find_element(By.CSS_SELECTOR, "input.step[data-run='0']")
    driver.execute_script("arguments[0].value = '0'; arguments[0].dispatchEvent(new Event('change'))", slider)
    wait_for(driver, "return sesimView.variants[0].step === 2 && sesimView.lastUrl.includes('step0=2')"
                     " && sesimView.lastMap.variants[0].step === 2")
    at2 = np.asarray(Image.open(io.BytesIO(fetch(view_url + "api/translation?image=0&run=0&step=2"))).convert("RGB"))
    base = driver.execute_script("return Array.from(sesimView.panels[1].base.data.filter((_, i) => i % 4 < 3))")
    assert np.array_equal(np.array(base, np.uint8).reshape(32 * scale, 32 * scale, 3), at2.repeat(scale, 0).repeat(scale, 1))

    # download the current view: one PNG holding every panel
    driver.find_element(By.ID, "download").click()
    done = wait_for(driver, "return sesimView.lastDownload")
    assert done["width"] > 3 * 32 * scale and done["bytes"] > 1000 and done["name"].endswith(".png")
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_new_style_button_of_a_multimodal_run(browser, view_runs):
    from selenium.webdriver.common.by import By

    proc, url = start_view(["--run", str(view_runs.multimodal)])
    try:
        driver = browser
        driver.get(url)
        wait_for(driver, "return window.sesimView && sesimView.ready")
        scale = driver.execute_script("return sesimView.panels[1].scale")
        shown = "return Array.from(sesimView.panels[1].base.data.filter((_, i) => i % 4 < 3))"  # RGB of the panel

        def served(style: int) -> np.ndarray:
            png = fetch(url + f"api/translation?image=0&run=0&style={style}")
            return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).repeat(scale, 0).repeat(scale, 1)

        side = 32 * scale
        assert np.array_equal(np.array(driver.execute_script(shown), np.uint8).reshape(side, side, 3), served(0))
        driver.find_element(By.CSS_SELECTOR, "button.newstyle[data-run='0']").click()
        wait_for(driver, "return sesimView.variants[0].style === 1")
        expected = served(1)
        assert not np.array_equal(expected, served(0))
        wait_for(driver, "return document.querySelector('.stylelabel').textContent === 'style 1'")
        deadline = time.monotonic() + 60
        while not np.array_equal(np.array(driver.execute_script(shown), np.uint8).reshape(side, side, 3), expected):
            assert time.monotonic() < deadline, "the page did not draw style 1"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
