"""The layout's one-way imports, checked on the source: use cases reach I/O only through ports.

A use case holds the order of steps; what it reads and writes comes in through the App's ports (service/ports.py),
wired by bootstrap alone. So a use case imports the plain data (domain), the port Protocols, the pure core
(clustering), its sibling use cases, and the few rules that are data-only (what a CSV row may be, whose fault a
failure is, how a file is written whole, how ids are found in a sorted array) — never an adapter, the run state
files, a worker or a face.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USECASES = ROOT / "service" / "usecases"

# service modules a use case may import (a prefix matches its submodules), each for a reason
ALLOWED = {
    "service.domain": "plain data",
    "service.ports": "the Protocols the App hands out",
    "service.clustering": "the pure core over arrays",
    "service.usecases": "sibling use cases",
    "service.ingest": "the CSV reading rules (bytes -> headlines + rejects), no I/O of its own",
    "service.faults": "which failures are our environment's (retry) and which the file's",
    "service.files": "how the inbox's files are written whole (temp + rename)",
    "service.sorted_keys": "finding ids in a sorted array, pure numpy",
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, resolved to its dotted name (relative imports included, TYPE_CHECKING ones too:
    a use case typed against bootstrap's App would still depend on the composition root)."""
    package = "service.usecases"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            else:
                names = [node.module]
            out += [(node.lineno, n) for n in names]
    return out


def test_usecases_import_only_domain_ports_and_clustering():
    files = sorted(USECASES.glob("*.py"))
    assert len(files) >= 5  # the walk found the use cases
    wrong = []
    for path in files:
        for line, module in _imports(path):
            ours = module == "service" or module.startswith(("service.", "workers"))
            if ours and not any(module == a or module.startswith(a + ".") for a in ALLOWED):
                wrong.append(f"{path.name}:{line} imports {module}")
    assert wrong == [], "use cases reach I/O through ports (service/ports.py), wired in bootstrap:\n" + "\n".join(wrong)


def test_the_walk_sees_relative_and_lazy_imports(tmp_path):
    """The check itself: a relative import inside a function resolves to the module it names."""
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from ..adapters.notify import describe\n    from .. import state\n")
    assert [m for _, m in _imports(sample)] == ["service.adapters.notify", "service.state"]


def _methods(cls) -> dict[str, list[str]]:
    import inspect

    return {name: [p for p in inspect.signature(fn).parameters if p != "self"]
            for name, fn in vars(cls).items() if inspect.isfunction(fn) and not name.startswith("_")}


def test_each_adapter_has_every_method_of_its_port_with_its_parameters():
    """The ports are the contract: an adapter missing a method, or naming its parameters otherwise, fails here and not
    at the first call in production."""
    from service import ports
    from service.adapters.milvus import MilvusStore
    from service.adapters.notify import Teller
    from service.adapters.sql.alerts import SqlAlertHistory
    from service.adapters.sql.coordination import SqlCoordination
    from service.adapters.sql.ledger import SqlLedger
    from service.adapters.sql.reads import SqlStoryReads
    from service.adapters.sql.runs import SqlRunHistory
    from service.report.pages import HtmlPages
    from service.state import StateFolder

    pairs = [(ports.DocumentLedger, SqlLedger), (ports.RunHistory, SqlRunHistory), (ports.StoryReads, SqlStoryReads),
             (ports.AlertHistory, SqlAlertHistory), (ports.Coordination, SqlCoordination), (ports.RunFiles, StateFolder),
             (ports.Notifier, Teller), (ports.ReportPages, HtmlPages), (ports.VectorStore, MilvusStore),
             (ports.SearchIndex, MilvusStore)]
    for port, adapter in pairs:
        have = _methods(adapter)
        for name, params in _methods(port).items():
            assert name in have, f"{adapter.__name__} lacks {port.__name__}.{name}"
            assert have[name] == params, f"{adapter.__name__}.{name}{tuple(have[name])} is not {port.__name__}.{name}{tuple(params)}"
