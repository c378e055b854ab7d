"""No import circles: among the modules of hard_core/ and app/, no module-level import leads back to the
module it started from (a package's own submodules importing their parent count too)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The known modules that `path` imports at module level (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{stem}.{a.name}" for a in node.names] + [stem]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def test_no_import_circles():
    files = {}
    for base, folder in [(ROOT, ROOT / "hard_core"), (ROOT / "app", ROOT / "app")]:  # app/ runs with app/ on the path
        for path in folder.rglob("*.py"):
            files[module_name(path, base)] = path
    known = set(files)
    graph = {name: imports(path, name, known) for name, path in files.items()}
    assert graph["hard_core.models"] >= {"hard_core.models.registry", "hard_core.models.mlp"}  # the parser works

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for c in map(cycle_from, sorted(graph)) if c]
    assert not cycles, cycles[0]
