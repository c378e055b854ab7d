"""End to end in a real browser: start the lab on 127.0.0.1, press Start in Debian Chromium (Playwright),
wait for augmented images and an accuracy curve from the run, visit every page, stop every process."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = ["Augmentation explorer", "Invariance inspector", "Compare runs", "Matrix", "Learn"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill(pid: int) -> None:
    """SIGTERM, then SIGKILL after 5 s, to the process group of `pid` (a training process of the lab)."""
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.killpg(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def lab(tmp_path):
    """The lab served on a free 127.0.0.1 port, with its own runs folder; everything it started is
    stopped afterwards, the server and each training process by its PID."""
    port, runs = free_port(), tmp_path / "runs"
    env = {**os.environ, "HARD_LAB_RUNS": str(runs), "HARD_LAB_MAX_RUNS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py",
                               "--server.headless", "true", "--server.port", str(port),
                               "--server.address", "127.0.0.1"], cwd=ROOT, env=env, start_new_session=True,
                              stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the lab did not answer on /_stcore/health: " + (tmp_path / "server.log").read_text()[-500:])
        yield f"http://127.0.0.1:{port}", runs
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for lab_json in runs.glob("*/lab.json"):
            pid = json.loads(lab_json.read_text()).get("pid")
            if pid:
                kill(pid)


def plot_points(page, index: int) -> int:
    return page.evaluate("""i => {
        const plots = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot');
        if (plots.length <= i || !plots[i].data) return 0;
        return plots[i].data.reduce((n, t) => n + (t.y ? t.y.filter(v => v !== null).length : 0), 0);
    }""", index)


def test_start_shows_augmented_images_and_curves_in_chromium(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    url, runs = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url, timeout=60_000)
            page.get_by_role("button", name="Start").click(timeout=60_000)
            gallery = page.locator('[data-testid="stImage"]').first
            gallery.wait_for(timeout=90_000)
            page.wait_for_function("""() => {
                const plots = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot');
                return plots.length >= 2 && plots[1].data && plots[1].data.some(t => t.y && t.y.length > 0);
            }""", timeout=120_000)
            assert plot_points(page, 1) > 0  # accuracy curve has points from the run
            assert "run=" in page.url
            page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
            assert (tmp_path / "live.png").stat().st_size > 10_000
            (run_dir,) = [d for d in runs.iterdir() if (d / "events.jsonl").is_file()]
            assert any(json.loads(line)["kind"] == "snapshot" for line in (run_dir / "events.jsonl").open())
            # the app's Stop, not Streamlit's own header "Stop" that shows while a script reruns
            page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop").click()
            for name in PAGES:
                page.get_by_role("link", name=name).first.click()
                page.get_by_role("heading").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)
                assert page.locator('[data-testid="stException"]').count() == 0, name
        finally:
            browser.close()
