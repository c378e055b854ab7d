"""`pip install .` installs a working engine: pyproject.toml declares every third-party module that hard_core/
(and the lab, with its extra) imports, its bounds admit the pinned set that `make` installs, and the wheel
ships the assets (hard_core/_assets, where `hard_core.assets` looks first) without the tests or the lab."""
import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement  # packaging comes with pytest
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10: requirements-dev.txt installs tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# import name -> distribution, where they differ; a dotted name covers the modules under it
DISTRIBUTION = {"yaml": "pyyaml", "PIL": "pillow", "torch.utils.tensorboard": "tensorboard", "sklearn": "scikit-learn",
                "cv2": "opencv-python", "skimage": "scikit-image", "google.protobuf": "protobuf"}


def requirements(lines) -> dict[str, Requirement]:
    """Canonical name -> Requirement of a list of requirement strings (the project's own extras skipped)."""
    reqs = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in reqs if canonicalize_name(r.name) != PROJECT["project"]["name"]}


def requirements_file(path: Path) -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return requirements(line for line in lines if line and not line.startswith("-"))


DEPENDENCIES = requirements(PROJECT["project"]["dependencies"])
EXTRAS = {name: requirements(reqs) for name, reqs in PROJECT["project"]["optional-dependencies"].items()}


def third_party_imports(folder: Path, local: set[str]) -> dict[str, dict[str, bool]]:
    """Distribution -> {file: whether some import of it runs when the module is imported}, for every import in
    the .py files under `folder` that is neither the standard library nor `local`. Imports inside functions
    and under `try:` are optional (they run on demand, or may fail)."""
    found: dict[str, dict[str, bool]] = {}

    def visit(node, path, eager):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Try)):
            eager = False
        if isinstance(node, ast.Import):
            statements = [[a.name] for a in node.names]  # `import a.b, c`: two imports
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            statements = [[node.module] + [f"{node.module}.{a.name}" for a in node.names]]
        else:
            statements = []
        for names in statements:
            top = names[0].split(".")[0]
            if top in sys.stdlib_module_names or top in local:
                continue
            prefixes = [p for p in DISTRIBUTION for n in names if n == p or n.startswith(p + ".")]
            dist = canonicalize_name(DISTRIBUTION[max(prefixes, key=len)] if prefixes else DISTRIBUTION.get(top, top))
            files = found.setdefault(dist, {})
            rel = str(path.relative_to(ROOT))
            files[rel] = files.get(rel, False) or eager
        for child in ast.iter_child_nodes(node):
            visit(child, path, eager)

    for path in sorted(folder.rglob("*.py")):
        visit(ast.parse(path.read_text()), path, True)
    return found


def test_every_import_of_the_engine_is_declared():
    found = third_party_imports(ROOT / "hard_core", {"hard_core"})
    assert {"torch", "torchvision", "pyyaml", "safetensors"} <= set(found)  # the scan works
    extras = {dist for reqs in EXTRAS.values() for dist in reqs}
    missing = {d: sorted(f) for d, f in found.items() if d not in DEPENDENCIES and d not in extras}
    assert not missing, f"imported by hard_core/ but not in pyproject.toml's dependencies or extras: {missing}"
    # an optional dependency may only be imported where it is needed, or `import hard_core...` breaks without it
    eager = {d: sorted(f for f, e in files.items() if e) for d, files in found.items() if d not in DEPENDENCIES}
    eager = {d: f for d, f in eager.items() if f}
    assert not eager, f"imported at module level but only in an extra (import it inside the function): {eager}"


def test_every_import_of_the_lab_is_in_the_lab_extra():
    app = ROOT / "app"
    local = {"hard_core", "app"} | {p.stem for p in app.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    found = third_party_imports(app, local)
    assert {"streamlit", "plotly"} <= set(found)
    missing = {d: sorted(f) for d, f in found.items() if d not in DEPENDENCIES and d not in EXTRAS["lab"]}
    assert not missing, f"imported by app/ but not in pyproject.toml's dependencies or its lab extra: {missing}"


def test_the_pinned_set_is_complete_and_admitted():
    """`make` installs requirements.txt (and -dev) and then the project with --no-deps: they must hold every
    declared dependency, pin torch and torchvision to the releases it is tested with, and fit the bounds."""
    pinned = requirements_file(ROOT / "requirements.txt")
    dev = requirements_file(ROOT / "requirements-dev.txt")
    assert str(pinned["torch"].specifier) == "==2.14.1" and str(pinned["torchvision"].specifier) == "==0.29.1"
    missing = sorted(set(DEPENDENCIES) - set(pinned))
    assert not missing, f"in pyproject.toml's dependencies, not in requirements.txt: {missing}"
    missing = sorted(set(EXTRAS["lab"]) - set(pinned))
    assert not missing, f"in the lab extra, not in requirements.txt (`make run` needs them): {missing}"
    for extra in ("log", "dev"):
        missing = sorted(set(EXTRAS[extra]) - set(pinned) - set(dev))
        assert not missing, f"in the {extra} extra, not in requirements.txt or requirements-dev.txt: {missing}"
    declared = [DEPENDENCIES] + list(EXTRAS.values())
    for name, req in {**dev, **pinned}.items():
        for version in (s.version for s in req.specifier if s.operator == "=="):
            for reqs in declared:
                if name in reqs:
                    assert reqs[name].specifier.contains(version), f"{name}=={version} is outside {reqs[name]}"


def test_the_installed_versions_fit_the_bounds():
    """The environment the suite runs in (make's: requirements*.txt) satisfies every declared bound."""
    for reqs in [DEPENDENCIES] + list(EXTRAS.values()):
        for name, req in reqs.items():
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
            assert req.specifier.contains(version, prereleases=True), f"installed {name} {version} is outside {req}"


def test_every_package_is_listed():
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hard_core").rglob("__init__.py")}
    assert on_disk <= listed, f"packages missing from pyproject.toml's [tool.setuptools] packages: {on_disk - listed}"
    assert PROJECT["project"]["scripts"]["hard-core"] == "hard_core.cli:main"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of what the build reads (about 2 s; no network, no build isolation)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("hard_core", "assets"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp / "out"), str(src)], check=True, capture_output=True, cwd=tmp)
    (path,) = (tmp / "out").glob("*.whl")
    return path


def test_the_wheel_ships_the_assets_and_not_the_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = {p.relative_to(ROOT / "assets").as_posix() for p in (ROOT / "assets").rglob("*")
              if p.is_file() and p.suffix in (".json", ".safetensors") and ".training" not in p.parts}
    assert "teacher-mnist5k-c40.safetensors" in assets
    assert not {f"hard_core/_assets/{a}" for a in assets} - names, "files of assets/ missing from the wheel"
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hard_core").rglob("*.py")}
    assert "hard_core/cli/__init__.py" in modules and not modules - names, "modules missing from the wheel"
    assert not [n for n in names if n.split("/")[0] in ("tests", "app", "assets", "docs", "scripts")]
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "hard-core = hard_core.cli:main" in zipfile.ZipFile(wheel).read(meta).decode()


def test_the_installed_package_finds_its_own_assets(wheel, tmp_path):
    """Unpacked where no checkout is, `hard_core.assets` finds the shipped teacher in hard_core/_assets."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import hard_core.assets as a; print(a.ASSETS); print(a.shipped_teacher('mnist5k', 40)); "
            "print(a.kept('x')[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True,
                         env={**os.environ, "PYTHONPATH": str(site)}).stdout.split()
    assert out == [str(site / "hard_core" / "_assets"), str(site / "hard_core/_assets/teacher-mnist5k-c40.safetensors"),
                   str(site / "hard_core/_assets/cache/x")]
