"""The house rules of the code base: layers import downwards only, every command goes through one wrapper,
every user mistake is a UserError, and the config presets (debug family, sweeps, names) do what they say."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from helpers import compose_config, compose_with_hydra

import mmbehave
from mmbehave.core import errors

PACKAGE = Path(mmbehave.__file__).parent
# Lower layers first; a module may import its own package and the layers before it: never a layer after it,
# nor another package of its own layer (docs/architecture.md, "Layers").
LAYERS = {"core": 0, "domain": 1, "data": 2, "models": 2, "metrics": 2, "tracking": 3, "checkpoints": 4,
          "training": 5, "sweeps": 6, "analysis": 6, "predicting": 6, "reviewing": 6, "perf": 7, "commands": 8}
COMMANDS = {"train", "evaluate", "predict", "export", "report", "benchmark", "preprocess", "synthetic", "cache", "distill",
            "import_camtrap_dp", "split", "review", "pretrain"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[0] != "mmbehave":
        raise ValueError(module)
    return parts[1] if parts[1] in LAYERS else "commands"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every mmbehave module ``path`` imports, at the top or inside a function: [(line, module)]."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmbehave"):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("mmbehave.")]
    return found


def package_modules() -> list[tuple[Path, str]]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        if name != "mmbehave":
            modules.append((path, name))
    return modules


def test_no_module_imports_from_a_layer_above_its_own_or_a_sibling_package():
    wrong = []
    for path, name in package_modules():
        own = layer_of(name)
        for line, module in imported_modules(path):
            if module == "mmbehave":
                continue  # the package root (its version)
            other = layer_of(module)
            upward = LAYERS[other] > LAYERS[own]
            sibling = LAYERS[other] == LAYERS[own] and other != own and own != "commands"
            if upward or sibling:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module} "
                             f"({'a layer above' if upward else 'a package of its own layer'})")
    assert not wrong, "\n".join(wrong)


def test_the_layer_table_of_the_docs_is_the_one_tested():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    by_layer: dict[int, set[str]] = {}
    for package, layer in LAYERS.items():
        by_layer.setdefault(layer, set()).add(package)
    for layer, packages in by_layer.items():
        row = re.search(rf"^\| {layer} \| ([^|]+) \|", text, re.MULTILINE)
        assert row, f"docs/architecture.md has no row for layer {layer}"
        named = set(re.findall(r"`(\w+)`", row.group(1))) or {"commands"}
        assert named == packages - {"commands"} or packages == {"commands"}, (layer, named, packages)


def test_architecture_names_every_module():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    unnamed = [str(path.relative_to(PACKAGE.parent)) for path, name in package_modules()
               if path.name != "__init__.py" and path.parent != PACKAGE
               and not re.search(rf"(?<!\w){re.escape(path.stem)}(?!\w)", text)]
    assert not unnamed, f"docs/architecture.md does not name: {', '.join(unnamed)}"


def test_the_top_of_the_package_holds_only_commands():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == COMMANDS
    for name in COMMANDS:
        source = (PACKAGE / f"{name}.py").read_text()
        assert f'@command("{name}"' in source, f"mmbehave/{name}.py: main does not go through core.cli.command"
        assert "sys.exit(2)" not in source, f"mmbehave/{name}.py handles user errors itself"


def test_every_error_a_user_can_cause_is_a_user_error():
    kinds = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if obj.__module__ == errors.__name__]
    assert len(kinds) >= 7
    assert all(issubclass(kind, errors.UserError) for kind in kinds)
    # No module defines a user-facing error class of its own outside core/errors.py.
    for path, _ in package_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and path.name != "errors.py":
                raise AssertionError(f"{path}: error class {node.name} belongs in mmbehave/core/errors.py")


@pytest.mark.parametrize("preset", ["fast", "overfit", "profile"])
def test_debug_presets_share_their_own_experiment_folders_and_logging(preset):
    cfg = compose_with_hydra(f"debug={preset}")
    assert cfg.mlflow.experiment_name == "debug"
    assert cfg.hardware.num_workers == 0
    assert "/outputs/debug/" in cfg.hydra.run.dir and "/multirun/debug/" in cfg.hydra.sweep.dir
    assert list(cfg.hydra.verbose) == ["mmbehave"]


def test_overfit_memorises_fixed_batches_without_randomness():
    cfg = compose_config(["debug=overfit"])
    assert cfg.training.overfit_batches == 2 and cfg.training.modality_dropout == 0
    assert all(value == 0 for value in cfg.data.augment.values())
    assert cfg.fusion.dropout == 0 and cfg.model.head_dropout == 0


@pytest.mark.parametrize("preset", ["mbt", "mbt_pareto"])
def test_sweep_presets_start_a_sweep_by_themselves(preset):
    cfg = compose_with_hydra(f"hparams_search={preset}")
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"


def test_the_monitored_metric_is_the_default_objective():
    cfg = compose_config(["training.monitor=val/loss", "training.monitor_mode=min"])
    assert cfg.optimized_metric == "val/loss"


# After read_run_settings the run's functions take the typed settings; the raw config reaches only what
# instantiates its _target_ nodes and the settings' own reading of it (training/settings.py says why).
RAW_CONFIG_READERS = {
    "training/run.py": {"run_training"},                       # reads the settings, hands cfg to the builders
    "training/settings.py": {"read_run_settings"},
    "training/parts.py": {"build_parts"},                      # and RunBuilders, which holds it as a field
    "training/feature_cache.py": {"prepare_feature_caches", "encoder_key"},  # the encoders' _target_ nodes
    "training/config_tree.py": {"config_tree", "print_config_tree"},  # printing: the record, or any config
    "predicting/run.py": {"run_prediction"},                   # reads predict's settings, the rest reads those
    "predicting/settings.py": {"read_predict_settings", "output_path", "model_download_dir"},
    "predicting/options.py": {"read_answer_options"},
    # Hydra hands its callbacks the config; they read the sweep's settings from it (sweeps/settings.py), and only
    # _prepare_study writes to it (a resumed study's sampler seed); record_failed_job is a failed job's record
    "sweeps/callback.py": {"on_multirun_start", "on_multirun_end", "on_job_start", "on_job_end", "record_trial",
                           "_prepare_study"},
    "sweeps/settings.py": {"read_sweep_settings", "read_job_settings", "parallel_torch_threads", "search_space"},
    "sweeps/runs.py": {"record_failed_job"},
}
RUN_PACKAGES = ("training", "predicting", "sweeps")


def takes_raw_config(function: ast.FunctionDef) -> bool:
    arguments = function.args.args + function.args.kwonlyargs
    return any(arg.arg in ("cfg", "config") or "DictConfig" in ast.unparse(arg.annotation or ast.Constant(""))
               for arg in arguments)


def test_the_raw_config_reaches_only_the_builders_and_the_record_after_the_settings():
    """train, predict and sweeps: read the settings once, then decide by them (evaluate and export read theirs
    in one function each, analysis/evaluation.py and export_comparison.py)."""
    reached = []
    for package in RUN_PACKAGES:
        for path in sorted((PACKAGE / package).glob("*.py")):
            allowed = RAW_CONFIG_READERS.get(f"{package}/{path.name}", set())
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef) and takes_raw_config(node) and node.name not in allowed:
                    reached.append(f"{package}/{path.name}:{node.lineno} {node.name}")
    assert not reached, "functions of the run that take the raw config:\n" + "\n".join(reached)
    run = ast.parse((PACKAGE / "training" / "run.py").read_text())
    uses = {function.name for function in ast.walk(run) if isinstance(function, ast.FunctionDef)
            for name in ast.walk(function) if isinstance(name, ast.Name) and name.id == "cfg"}
    assert uses == {"run_training"}, uses  # and run_training hands it to RunBuilders only
