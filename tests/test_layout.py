"""The package's shape, read from its source: no import cycles in `jaxgenre/` (counting
imports inside functions too, since a cycle hidden that way is still a cycle), configs
that import nothing from the library, and modules of one screenful of concerns."""

from __future__ import annotations

import ast
import os
from typing import Dict, List, Set

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "jaxgenre")


def _modules() -> Dict[str, str]:
    """Dotted module name → file, for every .py under jaxgenre/."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[dotted.removesuffix(".__init__")] = path
    return out


def import_graph(modules: Dict[str, str]) -> Dict[str, Set[str]]:
    """module → the jaxgenre modules it imports (`from a import b` is a.b when a.b is a
    module, else a)."""
    graph = {}
    for module, path in modules.items():
        is_package = path.endswith("__init__.py")
        edges = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    parts = module.split(".")[:len(module.split(".")) - node.level + is_package]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    edges.add(full if full in modules else base)
        graph[module] = {e for e in edges if e in modules and e != module}
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One cycle as a list of modules (first == last), or [] when there is none."""
    state: Dict[str, int] = {}  # 1 on the stack, 2 done
    stack: List[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package():
    graph = import_graph(_modules())
    assert "jaxgenre.data.sources" in graph["jaxgenre.data.prepare"]  # the graph is real
    assert find_cycle(graph) == []


def test_configs_import_nothing_from_the_library():
    for name in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        if name.endswith(".py"):
            tree = ast.parse(open(os.path.join(ROOT, "configs", name)).read())
            imported = [n.module if isinstance(n, ast.ImportFrom) else a.name
                        for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                        for a in n.names]
            assert not [m for m in imported if m and m.startswith("jaxgenre")], name


@pytest.mark.parametrize("module", sorted(_modules()))
def test_modules_stay_small(module):
    with open(_modules()[module]) as f:
        assert sum(1 for _ in f) <= 300, f"{module}: split it by concern"


# --- every default once (issue 23, item 3) ------------------------------------------------

# Names a config (section) goes by: config, cfg, optim, aug, data, feats, run["config"]...
CONFIG_RECEIVER = ("config", "cfg", "optim", "aug", "data", "feats", "'config'", '"config"')


def _config_like(receiver: ast.AST) -> bool:
    text = ast.unparse(receiver)
    parts = text.replace("[", ".").replace("]", "").replace("(", ".").replace(")", "").split(".")
    return any(p in CONFIG_RECEIVER or p.endswith(("_config", "_cfg")) for p in parts)


def restated_defaults(source: str, keys: Set[str]) -> List[str]:
    """`<config ...>.get("key", ...)` and `getattr(<config ...>, "key", ...)` on a key
    configs/base.py defines: each one states the key's default a second time (or None
    in its place)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
            receiver, key = node.func.value, node.args[0]
        elif isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) == 3:
            receiver, key = node.args[0], node.args[1]
        else:
            continue
        if isinstance(key, ast.Constant) and key.value in keys and _config_like(receiver):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _base_keys() -> Set[str]:
    from configs import base

    keys, todo = set(), [base.get_config()]
    while todo:
        section = todo.pop()
        for key in section.keys():
            keys.add(key)
            if hasattr(section[key], "keys"):
                todo.append(section[key])
    return keys


def test_the_restated_default_finder_finds_planted_ones():
    keys = {"clip_mean", "seed"}
    planted = ("a = config.eval.get('clip_mean', 'probability')\n"
               "b = self.config.data.get('seed')\n"
               "c = results.get('clip_mean', 0)\n"  # not a config: fine
               "d = config.eval.clip_mean\n"
               "e = getattr(config.eval, 'clip_mean', 'probability')\n"
               "f = run['config']['eval'].get('clip_mean', 'probability')\n"
               "g = model_cfg.get('seed', 0)\n"
               "h = dict(config.eval).get('clip_mean')\n")
    assert [f.split(":")[0] for f in restated_defaults(planted, keys)] == [
        "line 1", "line 2", "line 5", "line 6", "line 7", "line 8"]


def test_no_default_is_restated_outside_configs_base():
    keys = _base_keys()
    assert {"clip_mean", "ema_decay", "select"} <= keys  # the key set is real
    files = list(_modules().values()) + [os.path.join(ROOT, "launch.py")] + [
        os.path.join(ROOT, "benchmarks", n) for n in os.listdir(os.path.join(ROOT, "benchmarks"))
        if n.endswith(".py")]
    found = {os.path.relpath(p, ROOT): restated_defaults(open(p).read(), keys) for p in files}
    assert {p: f for p, f in found.items() if f} == {}


def test_the_data_pins_live_only_in_configs_base():
    """Every mirror URL and digest of config.data (GTZAN's, FMA's) is written once, in
    configs/base.py: no module of the package states one again."""
    from configs import base

    data = base.get_config().data
    pins = [*data.gtzan.urls, data.gtzan.sha256, *data.fma.mirrors, *data.fma.sha1.values()]
    assert len(pins) == 8 and all(len(p) >= 32 for p in pins)  # the pins are real
    sources = {path: open(path).read() for path in _modules().values()}
    assert {os.path.relpath(path, ROOT): [p for p in pins if p in text]
            for path, text in sources.items() if any(p in text for p in pins)} == {}


def test_every_entry_point_goes_through_the_one_command_line_edge():
    """Each `python -m jaxgenre.<tool>` module's `__main__` block is `cli.run(main)`:
    one-line errors, exit status 2 and shortened library logs for all of them."""
    entries = {}
    for module, path in _modules().items():
        for node in ast.parse(open(path).read()).body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                entries[module] = ast.unparse(node)
    assert len(entries) >= 6, sorted(entries)  # predict, compare, ensemble, inventory, ...
    assert {m: e for m, e in entries.items() if "cli.run(main)" not in e} == {}


def test_only_the_feature_tour_uses_the_testing_package():
    """jaxgenre.testing (librosa references, test signals, torchvision) is for tests,
    benchmarks and the feature tour: no training, evaluation or predict module uses it."""
    graph = import_graph(_modules())
    users = {m for m, edges in graph.items() if any(e.startswith("jaxgenre.testing") for e in edges)
             and not m.startswith("jaxgenre.testing")}
    assert "jaxgenre.testing.signals" in graph  # the package is where it should be
    assert users == {"jaxgenre.feature_summary"}


# --- the results package and the feature spec stand apart from training (issue 23) ----

TRAINING_PATH = ("jaxgenre.training", "jaxgenre.experiments", "jaxgenre.checkpoint",
                 "jaxgenre.parallel", "jaxgenre.data.prepare", "jaxgenre.predict")


def reaches(graph: Dict[str, Set[str]], start: str) -> Set[str]:
    """Every module `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_reach_finder_follows_imports_through_other_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}
    assert reaches(graph, "a") == {"b", "c"} and reaches(graph, "c") == set()


def test_results_and_the_feature_spec_import_nothing_of_the_training_path():
    graph = import_graph(_modules())
    roots = [m for m in graph if m.startswith(("jaxgenre.results", "jaxgenre.features"))]
    assert "jaxgenre.results.writer" in roots and "jaxgenre.features.spec" in roots
    found = {m: sorted(r for r in reaches(graph, m) if r.startswith(TRAINING_PATH))
             for m in roots}
    assert {m: hit for m, hit in found.items() if hit} == {}


def test_the_package_root_holds_few_modules():
    """Issue 23: new capabilities land in a package with a room for them (features/,
    results/, training/, checkpoint/, audio/, data/, models/), not as flat modules."""
    root = [n for n in os.listdir(PACKAGE) if n.endswith(".py")]
    assert len(root) <= 16, sorted(root)
