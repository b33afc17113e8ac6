"""How fast does ``sesim view`` answer? Click-to-map latency at 128 and 256 px, cold and cached.

For each size, a run with the paper-size networks (ResNet generator ngf 64 / 9 blocks, FSeSim on the
default pretrained backbone -- ImageNet EfficientNet-Lite0 on a machine without the VGG16 file --,
32 x 32 windows) is trained for one step on generated demo scenes (the weights do not change the
cost), served by the real server in this process, and asked
over HTTP, as the page asks:

- **cold click**: a map of an image nothing has been computed for (translation, the structure
  features of the input and the translation, then the map);
- **select image**: the translation PNG the page loads when an image is chosen (the server then
  computes the click features in the background);
- **first click after selecting**: a click 0.3 s after the translation arrived;
- **cached click**: a click at another point, same layer (the features are cached per image);
- **other layer**, **global map**: a click after switching the layer / the map mode;
- **error map**: the whole-image error map, first time and cached.

With ``--browser`` it also times, in headless Chromium, a real click on the page until the canvas
shows the new map (request, JSON, drawing), at each size: from the page's click event (the page's
own ``performance.now()``) and from WebDriver (adds its round trips). Every number is the median (and the
90th percentile) of ``--repeats`` measurements, in milliseconds of wall time.

    python bench/view_latency.py [--browser] [--repeats 12]
    python bench/view_latency.py --screenshot docs/view.png --run RUN [--run RUN2] [--point X,Y]

Writes ``bench/results/view_latency.{json,md}``. The screenshot mode only writes the picture: the
page on the given runs with the map of one clicked point.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

from sesim.config import TrainConfig  # noqa: E402
from sesim.data.demo_scenes import make_demo_dataset  # noqa: E402
from sesim.train import train  # noqa: E402
from sesim.view.server import ViewServer, build_session  # noqa: E402

POINTS = [(0.3, 0.4), (0.7, 0.2), (0.5, 0.5), (0.1, 0.9), (0.8, 0.75), (0.25, 0.6), (0.9, 0.1), (0.6, 0.95)]


def make_run(work: Path, size: int, images: int) -> Path:
    """A one-step FSeSim run at ``size`` px with the paper-size networks."""
    data = work / f"data{size}"
    make_demo_dataset(data, size=size, n_train=2, n_test=images, seed=0)
    cfg = TrainConfig()
    cfg.update("data", dict(data=str(data), size=size, load_size=size, workers=0))
    cfg.update("loss", dict(pool_size=0))  # the default pretrained backbone, as a user's run has
    cfg.update("run", dict(steps=1, runs=str(work / "runs"), name=f"paper-size-{size}", checkpoint_every=1,
                           sample_every=1, num_samples=images))
    return train(cfg, progress=False)


def timed_get(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        response.read()
    return 1000 * (time.perf_counter() - t0)


def stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median_ms": round(statistics.median(ordered), 1),
            "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1), "n": len(ordered)}


def serve(runs: list[Path]) -> ViewServer:
    server = ViewServer(build_session(runs), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def measure_http(run: Path, size: int, repeats: int) -> dict:
    server = serve([run])
    url = server.url
    session = server.session
    layers = session.runs[0].layers
    n_images = len(session.images)
    pts = [(min(size - 1, int(fx * size)), min(size - 1, int(fy * size))) for fx, fy in POINTS]

    def map_url(i, p, layer=layers[0], mode="run"):
        return f"{url}api/map?image={i}&x={p[0]}&y={p[1]}&layer={layer}&mode={mode}"

    rows: dict[str, list[float]] = {k: [] for k in ("cold click", "select image", "first click after selecting",
                                                    "cached click", "other layer", "global map",
                                                    "error map (first)", "error map (cached)")}
    for r in range(repeats):
        session.clear_cache()  # every repeat starts from nothing computed
        i = r % n_images
        rows["cold click"].append(timed_get(map_url(i, pts[0])))
        j = (i + 1) % n_images
        rows["select image"].append(timed_get(f"{url}api/translation?image={j}&run=0"))
        time.sleep(0.3)
        rows["first click after selecting"].append(timed_get(map_url(j, pts[1])))
        rows["cached click"].append(timed_get(map_url(j, pts[2 + r % 6])))
        rows["other layer"].append(timed_get(map_url(j, pts[3], layer=layers[-1])))
        rows["global map"].append(timed_get(map_url(j, pts[4], mode="global")))
        rows["error map (first)"].append(timed_get(f"{url}api/error?image={j}"))
        rows["error map (cached)"].append(timed_get(f"{url}api/error?image={j}"))
    server.shutdown()
    server.server_close()
    return {name: stats(values) for name, values in rows.items()}


def measure_browser(run: Path, size: int, repeats: int) -> dict:
    """In Chromium: click -> the canvas shows the new map (the page's ``draws`` counter moves)."""
    from selenium.webdriver.common.by import By

    from headless_chromium import chromium, click, wait_for

    server = serve([run])
    times, in_page = [], []
    with chromium() as driver:
        driver.get(server.url)
        wait_for(driver, "return window.sesimView && sesimView.ready", timeout=300)
        time.sleep(1.0)  # let the background feature computation of the first image finish
        canvas = driver.find_elements(By.CSS_SELECTOR, "canvas.marks")[0]
        scale = driver.execute_script("return sesimView.panels[0].scale")
        for r in range(repeats + 1):
            fx, fy = POINTS[r % len(POINTS)]
            point = (min(size - 1, int(fx * size)), min(size - 1, int(fy * size)) - r % 3)
            draws = driver.execute_script("sesimView.clickToDrawMs = null; return sesimView.draws")
            t0 = time.perf_counter()
            click(driver, canvas, point, scale)
            # at 1 screen pixel per image pixel the click may land on a neighbour of `point`: wait for
            # the map of whatever point the page took
            wait_for(driver, f"return sesimView.draws > {draws} && sesimView.clickToDrawMs !== null && "
                             "sesimView.lastMap.x === sesimView.point.x && sesimView.lastMap.y === sesimView.point.y")
            if r:  # the first click also pays for moving the pointer onto the canvas
                times.append(1000 * (time.perf_counter() - t0))
                in_page.append(driver.execute_script("return sesimView.clickToDrawMs"))
    server.shutdown()
    server.server_close()
    return {"Chromium: click event to drawn map (in the page)": stats(in_page),
            "Chromium: click to drawn map, seen from WebDriver": stats(times)}


def screenshot(runs: list[Path], output: Path, point: tuple[int, int] | None, layer: str | None) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from headless_chromium import chromium, click, wait_for

    server = serve(runs)
    with chromium(1320, 900) as driver:
        driver.get(server.url)
        wait_for(driver, "return window.sesimView && sesimView.ready", timeout=300)
        if layer:
            Select(driver.find_element(By.ID, "layer")).select_by_value(layer)
        image = server.session.images[0].image
        point = point or (image.shape[-1] // 2, image.shape[-2] // 2)
        scale = driver.execute_script("return sesimView.panels[0].scale")
        click(driver, driver.find_elements(By.CSS_SELECTOR, "canvas.marks")[0], point, scale)
        wait_for(driver, f"return sesimView.draws > 0 && sesimView.lastMap && sesimView.lastMap.x === {point[0]}",
                 timeout=300)
        time.sleep(0.3)
        output.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(output))
    server.shutdown()
    server.server_close()
    print(f"wrote {output}")


def write_report(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "view_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# `sesim view` latency", "",
             f"`python bench/view_latency.py{' --browser' if result['browser'] else ''} --repeats "
             f"{result['repeats']}`, {result['machine']}, torch {result['torch']} with {result['threads']} threads, "
             f"load average {result['load_before']} before / {result['load_after']} after. Paper-size networks "
             f"(ResNet G ngf 64, 9 blocks; FSeSim on {result.get('backbone', '?')}, 32 x 32 windows). "
             "Median (90th percentile) milliseconds over the repeats; each repeat starts with empty caches.", "",
             "| request | " + " | ".join(f"{s} px" for s in result["sizes"]) + " |",
             "|---|" + "---|" * len(result["sizes"])]
    names = list(next(iter(result["sizes"].values())))
    for name in names:
        cells = [f"{r[name]['median_ms']:.0f} ({r[name]['p90_ms']:.0f})" for r in result["sizes"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "view_latency.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--browser", action="store_true", help="also time real clicks in headless Chromium")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--screenshot", default=None, metavar="PNG", help="only write a screenshot of --run(s)")
    parser.add_argument("--run", action="append", default=[], help="runs for --screenshot")
    parser.add_argument("--point", default=None, help="--screenshot: the clicked point x,y (default: the centre)")
    parser.add_argument("--layer", default=None, help="--screenshot: the layer shown")
    args = parser.parse_args()
    if args.screenshot:
        point = tuple(int(v) for v in args.point.split(",")) if args.point else None
        screenshot([Path(r) for r in args.run], Path(args.screenshot), point, args.layer)
        return
    load_before = round(os.getloadavg()[0], 2)
    sizes, backbone = {}, None
    with tempfile.TemporaryDirectory(prefix="sesim-view-bench-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            run = make_run(Path(tmp), size, images=4)
            backbone = json.loads((run / "config.json").read_text())["resolved"]["backbone"]["description"]
            sizes[f"{size}"] = measure_http(run, size, args.repeats)
            if args.browser:
                sizes[f"{size}"].update(measure_browser(run, size, args.repeats))
            print(size, json.dumps(sizes[f"{size}"]), flush=True)
    result = {"sizes": sizes, "repeats": args.repeats, "browser": args.browser, "torch": torch.__version__,
              "backbone": backbone,
              "threads": torch.get_num_threads(), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores", "load_before": load_before, "load_after": round(os.getloadavg()[0], 2)}
    write_report(result, Path(args.out))
    print((Path(args.out) / "view_latency.md").read_text())


if __name__ == "__main__":
    main()
