"""Data and imports flow one way: parts never import the layers that wire them (the daemon, the
CLI, the configs), and models and scorers never import training or bundles."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sentinel"
WIRING = ("sentinel.cli", "sentinel.cli_args", "sentinel.service.daemon", "sentinel.config", "sentinel.training.config")
RULES = {  # modules under this prefix never import any of these
    "sentinel.features": ("sentinel.scoring", "sentinel.bundle", "sentinel.training", "sentinel.service", *WIRING),
    "sentinel.diffusion": ("sentinel.scoring", "sentinel.bundle", "sentinel.training", "sentinel.service", *WIRING),
    "sentinel.scoring": ("sentinel.bundle", "sentinel.training", "sentinel.service", *WIRING),
    "sentinel.baseline": ("sentinel.bundle", "sentinel.training", "sentinel.service", *WIRING),
    "sentinel.bundle": ("sentinel.training", "sentinel.service", *WIRING),
    "sentinel.capture": ("sentinel.service", "sentinel.bundle", *WIRING),
    "sentinel.alerts": ("sentinel.service", "sentinel.bundle", *WIRING),
    "sentinel.web": ("sentinel.service", "sentinel.bundle", *WIRING),
    "sentinel.training": ("sentinel.service", "sentinel.cli", "sentinel.config"),
    "sentinel.service.pipeline": ("sentinel.service.daemon", *WIRING),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.startswith("sentinel")}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, path


def test_no_import_from_a_lower_layer_to_a_higher_one():
    bad = []
    for name, path in _modules():
        for prefix, forbidden in RULES.items():
            if name == prefix or name.startswith(prefix + "."):
                bad += [f"{name} imports {i}" for i in sorted(_imports(path))
                        if any(i == f or i.startswith(f + ".") for f in forbidden)]
    assert not bad, "\n".join(bad)


def test_the_rules_see_the_imports():
    """The check reads real imports: the daemon does import the pipeline and the config."""
    assert {"sentinel.service.pipeline", "sentinel.config"} <= _imports(PACKAGE / "service" / "daemon.py")
