"""Cost of the pre-flight image check on 1,000 images (``sesim.data.images.check_image``).

Before training, every image of both domains is checked so that a broken file stops the run before
step 1, not in the middle of it. Opening the header alone misses truncated files; decoding every
image fully would cost as much as an epoch of data loading. The check reads PNGs chunk by chunk
with their CRCs (no pixel decode) and looks for a JPEG's end-of-image marker after its last scan
(a truncated file has none). This script times, per image, on three sets of 1,000
generated images (files just written, so in the page cache — the cost of the check, not of the
disk):

- ``header``: ``Image.open`` + size (the check before this change),
- ``check``: :func:`sesim.data.images.check_image`,
- ``decode``: :func:`sesim.data.images.load_image` (a full decode, what training does per image).

    python bench/preflight.py            # about 2 minutes on 2 cores (the full decodes dominate)

Writes ``<out>/preflight.json`` and ``.md`` (default ``bench/results``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from sesim.data.images import check_image, load_image  # noqa: E402

SETS = {"jpeg 256x256": ("jpg", (256, 256)), "png 256x256": ("png", (256, 256)),
        "jpeg 1024x768": ("jpg", (1024, 768))}


def make_images(folder: Path, suffix: str, size: tuple[int, int], n: int) -> list[Path]:
    """``n`` photo-like images (smooth colour fields with noise) of ``size``."""
    rng = np.random.default_rng(0)
    w, h = size
    paths = []
    for i in range(n):
        low = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(low).resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16)
        img = np.clip(base + rng.integers(-12, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{i:04d}.{suffix}"
        Image.fromarray(img).save(path, quality=90) if suffix == "jpg" else Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def header(path: Path) -> None:
    with Image.open(path) as im:
        _ = im.size, im.mode


def time_per_image(fn, paths: list[Path], repeats: int = 3) -> float:
    """Median over ``repeats`` passes of the mean seconds per image."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p in paths:
            fn(p)
        runs.append((time.perf_counter() - t0) / len(paths))
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per method (median reported)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sesim-preflight-") as tmp:
        for name, (suffix, size) in SETS.items():
            folder = Path(tmp) / name.replace(" ", "_")
            folder.mkdir()
            paths = make_images(folder, suffix, size, args.n)
            row = {"set": name, "images": len(paths),
                   "mean_file_kb": round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1)}
            for label, fn in (("header", header), ("check", check_image), ("decode", load_image)):
                row[f"{label}_ms"] = round(1000 * time_per_image(fn, paths, args.repeats), 3)
            row["check_s_per_1000"] = round(row["check_ms"], 2)  # ms per image = s per 1,000 images
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "preflight.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    lines = ["# Pre-flight image check (bench/preflight.py)", "",
             f"Milliseconds per image (median of {args.repeats} pass(es) over {args.n:,} files in the page cache); "
             "ms per image = seconds per 1,000 images.", "",
             "| images | mean file | header only (before) | check (now) | full decode |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['mean_file_kb']} KB | {r['header_ms']} ms | {r['check_ms']} ms | "
                     f"{r['decode_ms']} ms |")
    (out / "preflight.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'preflight.md'}")


if __name__ == "__main__":
    main()
