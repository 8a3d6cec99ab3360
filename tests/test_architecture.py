"""The package's shape: no import cycle, every method reference resolves, nothing cites documents that
are not part of the product."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "affectnetplus_hf"
PACKAGE_NAME = PACKAGE.name
METHOD = REPO / "docs" / "method.md"
# what users and contributors read: the package, its card templates, the tests, the benchmarks
SCANNED = [PACKAGE, REPO / "dataset_card", REPO / "model_cards", REPO / "tests", REPO / "benchmarks", REPO / "spaces"]


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``module`` imports anywhere (top level or inside functions)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        for name in names:
            if not name.startswith(PACKAGE_NAME):
                continue
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in modules and name != module:
                found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_package_has_no_import_cycle():
    modules = _module_files()
    graph = {module: _imported(module, path, modules) for module, path in modules.items()}
    assert sum(len(targets) for targets in graph.values()) > 50  # the parser really sees the imports
    assert _cycles(graph) == []


def _text_files():
    for root in SCANNED:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in {".py", ".md", ".template", ".txt", ".toml", ".json", ".sh"}:
                parts = path.relative_to(root).parts
                if "results" in parts or "fixtures" in parts or any(part.startswith(".") for part in parts):
                    continue  # measurements, copied data, caches of local runs
                yield path


def test_no_citation_of_documents_outside_the_product():
    # the team's own notes and tracker are not shipped; code and cards cite the paper and docs/method.md
    pattern = re.compile(r"\bS" + r"PEC\b|\bD" + r"ESIGN\b|\bissue \d")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _text_files()
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of a Markdown file's headings."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            title = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(title.replace(" ", "-"))
    return anchors


def test_every_method_reference_resolves():
    anchors = _anchors(METHOD.read_text(encoding="utf-8"))
    assert {"label-space", "soft-label", "subsets", "metrics", "calibration"} <= anchors
    references = {
        (path.relative_to(REPO), anchor)
        for path in _text_files()
        for anchor in re.findall(r"method\.md#([\w\-]+)", path.read_text(encoding="utf-8", errors="replace"))
    }
    assert len(references) > 20  # code and cards really cite the method
    missing = sorted(f"{path}: #{anchor}" for path, anchor in references if anchor not in anchors)
    assert missing == []


@pytest.mark.parametrize(
    "anchor", ["label-space", "mas-split", "sampling", "ebc-scores", "au-scores", "reference-figures"]
)
def test_method_document_has_its_sections(anchor):
    assert anchor in _anchors(METHOD.read_text(encoding="utf-8"))


# Private internals of other libraries the package once reached into, each with its public replacement.
FORBIDDEN_PRIVATE_ATTRIBUTES = {
    "_dataloaders": "accelerate: prepare a loader with accelerate.data_loader.prepare_data_loader",
    "_non_persistent_buffers_set": "torch: register_buffer(name, buffer, persistent=True)",
    "_to_yaml_dict": "datasets: DatasetInfosDict.to_dataset_card_data",
    "_version": "torch: a tensor's in-place version counter",
}


def _package_trees():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _attribute_uses(tree: ast.AST, names) -> list[tuple[int, str]]:
    """``x.<name>``, ``getattr(x, "<name>")`` and the like, and ``from m import <name>``, for ``names``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            found.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
        ):
            found += [
                (node.lineno, arg.value)
                for arg in node.args[1:2]
                if isinstance(arg, ast.Constant) and arg.value in names
            ]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name in names]
    return sorted(found)


def test_attribute_finder_sees_the_forms_used():
    tree = ast.parse("a.b._version\ngetattr(m, '_dataloaders')\nfrom sys import meta_path\nsys.meta_path.insert(0, f)")
    assert _attribute_uses(tree, {"_version", "_dataloaders", "meta_path"}) == [
        (1, "_version"),
        (2, "_dataloaders"),
        (3, "meta_path"),
        (4, "meta_path"),
    ]


def test_no_import_hooks_in_the_package():
    # the Auto classes are registered with transformers' documented register calls, not by hooking imports
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path, tree in _package_trees()
        for line, name in _attribute_uses(tree, {"meta_path", "path_hooks", "MetaPathFinder", "PathEntryFinder"})
    ]
    assert offenders == []


def test_no_private_attributes_of_other_libraries_in_the_package():
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {name} (use {FORBIDDEN_PRIVATE_ATTRIBUTES[name]})"
        for path, tree in _package_trees()
        for line, name in _attribute_uses(tree, set(FORBIDDEN_PRIVATE_ATTRIBUTES))
    ]
    assert offenders == []


MAX_FUNCTION_LINES = 80


def _long_functions(tree: ast.AST, limit: int) -> list[tuple[str, int]]:
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_long_function_finder_counts_lines():
    body = "\n".join(f"    x{k} = {k}" for k in range(5))
    assert _long_functions(ast.parse(f"def f():\n{body}\n"), 5) == [("f", 6)]
    assert _long_functions(ast.parse(f"def f():\n{body}\n"), 6) == []


def test_no_function_in_the_package_is_over_80_lines():
    # orchestrators are short sequences of named steps (docstrings and decorators-free bodies counted)
    offenders = [
        f"{path.relative_to(REPO)}: {name} ({lines} lines)"
        for path, tree in _package_trees()
        for name, lines in _long_functions(tree, MAX_FUNCTION_LINES)
    ]
    assert offenders == []


def test_one_module_writes_the_run_folder_contract():
    # the lock, the marker and the staged publish live in run_folder.py; no module hand-writes them again
    offenders = []
    for path, tree in _package_trees():
        if path.name == "run_folder.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [
                    f"{path.relative_to(REPO)}:{node.lineno}: imports {m}"
                    for m in modules
                    if m.split(".")[0] == "filelock"
                ]
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith((".affectnetplus-", "run.json"))
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: marker name {node.value!r}")
    assert offenders == []


def test_module_docstrings_are_short():
    # design text lives in docs/method.md and docs/architecture.md, not in module docstrings
    offenders = [
        f"{path.relative_to(REPO)} ({len(doc.splitlines())} lines)"
        for path, tree in _package_trees()
        if (doc := ast.get_docstring(tree, clean=False)) and len(doc.splitlines()) > 15
    ]
    assert offenders == []
