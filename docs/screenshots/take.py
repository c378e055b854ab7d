"""Take the README's screenshots in a real browser.

    .venv/bin/python docs/screenshots/take.py          # writes docs/screenshots/*.png

Starts the lab on a free 127.0.0.1 port with a private runs folder (`scripts/lab_timings.py`'s
`lab_server`), presses Start with the defaults (HARD-affine, 600 steps, with its KD twin), waits until the
run and its twin have finished, then captures the verdict, progress bar and headline (`headline.png`),
the whole Live page (`live.png`) and the Invariance inspector (`inspector.png`); then opens a link with a
polarity run's settings (HARD-colour), starts it and captures its headline (`polarity.png`). Everything it started is
stopped by PID. `scripts/lab_timings.py` measures the timings.
"""
import json
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT.parents[1] / "scripts"))
from lab_timings import browser, lab_server  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, lab_server(Path(tmp) / "runs") as url, sync_playwright() as p:
        runs = Path(tmp) / "runs"
        b = browser(p)
        page = b.new_page(viewport={"width": 1400, "height": 3000}, device_scale_factor=1)
        page.goto(url)
        page.get_by_role("button", name="Start").wait_for(timeout=60_000)
        page.wait_for_timeout(8000)  # the warm standby engine loads meanwhile
        t0 = time.perf_counter()
        page.get_by_role("button", name="Start").click()
        page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
        print(f"Start -> first augmented images: {time.perf_counter() - t0:.1f} s")
        page.get_by_text("finished · step").first.wait_for(timeout=900_000)
        print(f"Start -> run finished: {time.perf_counter() - t0:.1f} s")
        while not all(json.loads(s.read_text())["state"] == "finished" for s in runs.glob("*/status.json")):
            time.sleep(2)  # the twin trains at low priority and may end after the run
        page.wait_for_timeout(3000)
        top, box = (page.locator(k).bounding_box() for k in (".st-key-verdict", ".st-key-headline"))
        page.screenshot(path=str(OUT / "headline.png"), clip={  # the verdict, the progress bar, the headline
            "x": box["x"], "y": top["y"], "width": box["width"], "height": box["y"] + box["height"] - top["y"]})
        page.screenshot(path=str(OUT / "live.png"), full_page=True)
        page.get_by_role("link", name="Invariance inspector").click()
        page.get_by_text("Predictions").wait_for(timeout=60_000)
        page.wait_for_timeout(2500)
        page.set_viewport_size({"width": 1400, "height": 1900})
        page.wait_for_timeout(1500)
        page.screenshot(path=str(OUT / "inspector.png"), full_page=True)
        # a polarity run from a link with its settings: its headline shows the polarity curve
        page.set_viewport_size({"width": 1400, "height": 3000})
        page.goto(f"{url}/?world=polarity&hard=colour")
        page.get_by_role("button", name="Start").click(timeout=60_000)
        page.get_by_text("finished · step").first.wait_for(timeout=900_000)
        while not all(json.loads(s.read_text())["state"] == "finished" for s in runs.glob("*/status.json")):
            time.sleep(2)
        page.wait_for_timeout(4000)
        top, box = (page.locator(k).bounding_box() for k in (".st-key-verdict", ".st-key-headline"))
        page.screenshot(path=str(OUT / "polarity.png"), clip={
            "x": box["x"], "y": top["y"], "width": box["width"], "height": box["y"] + box["height"] - top["y"]})
        b.close()


if __name__ == "__main__":
    main()
