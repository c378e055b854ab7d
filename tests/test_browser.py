"""End to end in a real browser: start the lab on 127.0.0.1, press Start in Debian Chromium (Playwright),
wait for augmented images, an accuracy curve and the headline's maps of both students (the run and its
KD twin), leave for the Learn page and come back (the run is still there), reload (still the owner's, not
read-only; the address holds no key), open it in a second browser session (read-only), visit every
page, stop every process. And: a click on a Matrix cell opens that cell's run with its settings in the
form, and once it and its twin have finished the headline compares them at the final step."""
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
    """The lab served on a free 127.0.0.1 port, with its own runs folder and a copy of the shipped matrix whose
    cells train 100 steps; everything it started is stopped afterwards, the server and each training process
    by its PID."""
    port, runs = free_port(), tmp_path / "runs"
    matrix = json.loads((ROOT / "docs" / "matrix" / "matrix.json").read_text())
    for cell in matrix["cells"]:
        for seed in cell["seeds"]:
            seed["config"]["steps"] = 100
    (tmp_path / "matrix.json").write_text(json.dumps(matrix))
    env = {**os.environ, "HARD_LAB_RUNS": str(runs), "HARD_LAB_MAX_RUNS": "1",
           "HARD_LAB_MATRIX": str(tmp_path / "matrix.json")}
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


HEADLINE_MAPS = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')].some(p =>
    p.data && ['KD student (twin)', 'HARD student'].every(name => p.data.some(t => t.name === name && t.z)))"""


def test_start_shows_the_story_and_the_run_survives_navigation_in_chromium(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    url, runs = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url, timeout=60_000)
            steps = page.get_by_label("Steps")
            steps.fill("100")
            steps.press("Enter")
            page.get_by_role("button", name="Start").click(timeout=60_000)
            gallery = page.locator('[data-testid="stImage"]').first
            gallery.wait_for(timeout=90_000)
            page.wait_for_function("""() => {
                const plots = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot');
                return [...plots].some(p => p.layout && JSON.stringify(p.layout.title || '').includes('ccuracy at step')
                                            && p.data.some(t => t.y && t.y.length > 0));
            }""", timeout=120_000)
            page.wait_for_function(HEADLINE_MAPS, timeout=180_000)  # teacher | KD twin | HARD student
            # .first: while a rerun redraws it (e.g. when the run ends) the page briefly holds the old one too
            assert "KD twin" in page.locator(".st-key-headline").first.inner_text()
            run_id = page.url.split("run=")[1].split("&")[0]
            assert "key=" not in page.url
            page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
            assert (tmp_path / "live.png").stat().st_size > 10_000
            # leave for another page and come back: the same run, its headline and its controls
            page.get_by_role("link", name="Learn").first.click()
            page.get_by_role("heading", name="Learn").first.wait_for(timeout=60_000)
            page.get_by_role("link", name="Live training").first.click()
            page.wait_for_function(HEADLINE_MAPS, timeout=60_000)
            assert f"run={run_id}" in page.url and "key=" not in page.url
            # a reload keeps control (the key is a cookie, never in the address or on screen)
            page.reload()
            page.wait_for_function(HEADLINE_MAPS, timeout=60_000)
            main = page.get_by_test_id("stMainBlockContainer")
            main.get_by_text("Teacher:").first.wait_for(timeout=30_000)
            assert "read-only" not in main.inner_text() and "key=" not in page.url  # still the owner's
            # another browser session opening the same address only watches
            other = browser.new_context().new_page()
            other.goto(page.url, timeout=60_000)
            other.get_by_text("read-only").first.wait_for(timeout=60_000)
            assert other.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop").count() == 0
            other.close()
            (run_dir,) = [d for d in runs.iterdir() if d.name == run_id]
            assert any(json.loads(line)["kind"] == "snapshot" for line in (run_dir / "events.jsonl").open())
            stop = main.get_by_role("button", name="Stop")  # the app's, not Streamlit's header "Stop"
            if stop.count():  # the short run may have finished by now: an ended run has no controls
                stop.click()
            for name in PAGES:
                page.get_by_role("link", name=name).first.click()
                page.get_by_role("heading").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)
                errors = page.locator('[data-testid="stException"]')
                assert errors.count() == 0, (name, errors.first.inner_text()[:500])
        finally:
            browser.close()


CELL = """([world, method]) => {  // the page coordinates of a Matrix heatmap cell's centre
    const p = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')][0];
    const box = p.querySelector('.nsewdrag').getBoundingClientRect();
    return [box.left + p._fullLayout.xaxis.d2p(method), box.top + p._fullLayout.yaxis.d2p(world)];
}"""


def test_a_matrix_cell_opens_its_run_with_its_settings_and_a_fair_headline_in_chromium(lab):
    from playwright.sync_api import sync_playwright

    url, runs = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "/matrix", timeout=60_000)
            page.wait_for_function("() => document.querySelector('.js-plotly-plot .nsewdrag')", timeout=60_000)
            for _ in range(4):  # a click that lands while the chart is still settling is lost: click again
                x, y = page.evaluate(CELL, ["polarity", "hard-colour"])
                page.mouse.click(x, y)
                for _ in range(40):
                    if "run=" in page.url:
                        break
                    page.wait_for_timeout(500)
                if "run=" in page.url:
                    break
            assert "run=" in page.url, "a click on the cell did not open its run"
            run_id = page.url.split("run=")[1].split("&")[0]
            sidebar = page.get_by_test_id("stSidebar")
            sidebar.get_by_text("These are the settings of the run on screen").wait_for(timeout=60_000)
            form = sidebar.evaluate("s => [...s.querySelectorAll('[data-testid=stSelectbox]')].map(b => "
                                    "b.innerText + ' ' + [...b.querySelectorAll('input')].map(i => "
                                    "i.getAttribute('aria-label') + ' ' + i.value).join(' ')).join(' | ')")
            assert "polarity: white-on-black" in form and "HARD-colour" in form, form
            assert sidebar.get_by_role("button", name="Start").is_visible()  # on the first screen
            main = page.get_by_test_id("stMainBlockContainer")
            main.get_by_text("the shipped CNN of the polarity world").first.wait_for(timeout=30_000)
            lab_json = json.loads((runs / run_id / "lab.json").read_text())
            assert lab_json["config"]["world"] == "polarity" and lab_json["config"]["hard"] == "colour"
            ended = lambda r: json.loads((runs / r / "status.json").read_text()).get("state") == "finished"  # noqa
            deadline = time.time() + 240
            while not (ended(run_id) and ended(lab_json["twin"])):
                assert time.time() < deadline, "the run and its twin did not finish"
                time.sleep(2)
            verdict = page.locator(".st-key-verdict")
            verdict.get_by_text("At step 100 (final)").wait_for(timeout=60_000)
            assert "KD twin" in verdict.inner_text() and "polarity" in verdict.inner_text()
            # the headline's curve is the polarity blend for the teacher, the twin and the run
            page.wait_for_function("""() => [...document.querySelectorAll('.st-key-headline .js-plotly-plot')].some(
                p => p.data && ['KD student (twin)', 'HARD student'].every(n => p.data.some(t => t.name === n && t.x))
                     && JSON.stringify(p.layout.title || '').includes('inversion'))""", timeout=60_000)
        finally:
            browser.close()
