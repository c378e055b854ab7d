"""Take the README's screenshots, and time Start -> first augmented images, in a real browser.

    .venv/bin/python docs/screenshots/take.py          # writes docs/screenshots/*.png, prints timings

Starts the lab on a free 127.0.0.1 port with a private runs folder, presses Start with the defaults
(HARD-affine, 600 steps) the moment the page appears, captures the Live page once the run has finished,
presses Start again (now the lab's warm standby engine is ready) and times that too, then captures the
inspector.
Stops the server and the training process by PID at the end.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    runs = Path(tempfile.mkdtemp()) / "runs"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.port",
                               str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env={**os.environ, "HARD_LAB_RUNS": str(runs)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 2900}, device_scale_factor=1)
            page.goto(url)
            page.get_by_role("button", name="Start").wait_for(timeout=60_000)
            t0 = time.perf_counter()
            page.get_by_role("button", name="Start").click()
            page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
            print(f"Start -> first augmented images in the browser: {time.perf_counter() - t0:.1f} s")
            page.get_by_text("finished", exact=False).first.wait_for(timeout=600_000)
            print(f"Start -> run finished: {time.perf_counter() - t0:.1f} s")
            page.wait_for_timeout(2500)
            page.screenshot(path=str(OUT / "live.png"), full_page=True)
            # a second Start, once the lab has been open a while: the warm standby engine is ready
            shown = """() => [...document.querySelectorAll('[data-testid="stImage"] img')].map(img => img.src)"""
            old = page.evaluate(shown)  # the finished run's images: wait for one that is not among them
            t0 = time.perf_counter()
            page.get_by_role("button", name="Start").click()
            page.wait_for_function(f"old => ({shown})().some(src => src && !old.includes(src))", arg=old,
                                   timeout=60_000)
            elapsed = time.perf_counter() - t0
            progress = page.locator('[data-testid="stProgress"]').first.inner_text().split("·")[:2]
            print(f"second Start -> first augmented images (warm engine): {elapsed:.1f} s ({'·'.join(progress).strip()})")
            page.get_by_role("button", name="Stop").click()
            page.get_by_role("link", name="Invariance inspector").click()
            page.get_by_text("Predictions").wait_for(timeout=60_000)
            page.wait_for_timeout(2500)
            page.set_viewport_size({"width": 1400, "height": 1900})
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / "inspector.png"), full_page=True)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        for lab in runs.glob("*/lab.json"):
            import json

            pid = json.loads(lab.read_text()).get("pid")
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(runs.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
