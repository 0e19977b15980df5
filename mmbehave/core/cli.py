"""The one decorator every command's ``main`` goes through.

    @command("train")            conf/train.yaml, composed by Hydra from the command line
    def main(cfg): ...

It adds, for every command alike:
- Hydra's execution whitelist for what Hydra itself builds from config (callbacks, sweeper hooks);
- presets that are sweeps (their YAML says ``hydra.mode: MULTIRUN``: ``hparams_search=mbt``,
  ``experiment=modality_ablation``) start a multirun without ``--multirun``;
- user mistakes (``UserError``) end with ``error: <message>`` on stderr and exit status 2, not a
  traceback; in a multirun they propagate instead, so the sweeper records the job as failed and goes on;
- SIGTERM / Ctrl-C that stop a training run (``RunInterrupted``) end with how to resume it, exit 128 + signal;
- passwords in URIs never reach the terminal, the logs or Hydra's ``.hydra/`` record (``core.redact``).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from mmbehave.core.errors import UserError
from mmbehave.core.instantiate import trusted_targets
from mmbehave.core.paths import config_dir
from mmbehave.core.redact import (
    has_password,
    redact_files,
    redact_log_handlers,
    redact_standard_streams,
)
from mmbehave.core.signals import RunInterrupted

log = logging.getLogger("mmbehave")

def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def exit_on_user_error(run: Callable[[], Any]) -> Any:
    """``run()``; on a UserError print ``error: <message>`` and exit 2 (re-raise in a multirun); on a
    RunInterrupted print how to resume and exit 128 + the signal's number."""
    try:
        return run_with_resolver_errors(run)
    except UserError as error:
        if in_multirun():
            raise
        log.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except RunInterrupted as stop:
        if in_multirun():
            raise
        print(f"stopped: {stop}", file=sys.stderr)
        sys.exit(128 + stop.signum)


def run_with_resolver_errors(run: Callable[[], Any]) -> Any:
    """``run()``, where a config resolver's UserError (``${pretrained_file:...}``) arrives as itself, not wrapped in
    OmegaConf's InterpolationResolutionError with a traceback."""
    from omegaconf.errors import InterpolationResolutionError

    try:
        return run()
    except InterpolationResolutionError as error:
        cause, seen = error, set()
        while cause is not None and id(cause) not in seen:  # OmegaConf re-raises it wrapped, more than once
            seen.add(id(cause))
            if isinstance(cause, UserError):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise


def guard_credentials() -> None:
    """Redact passwords from every log handler and from Hydra's record of this run, and warn when the command
    line carries one (the shell history and Hydra keep it)."""
    from hydra.core.hydra_config import HydraConfig

    redact_log_handlers()
    passwords = [arg.split("=", 1)[0] for arg in sys.argv[1:] if has_password(arg)]
    if not passwords:
        return
    message = (f"{', '.join(passwords)} on the command line carries a password; it is redacted from mmbehave's logs, "
               "MLflow and .hydra/, but stays in your shell history. Prefer MLFLOW_TRACKING_USERNAME / "
               "MLFLOW_TRACKING_PASSWORD (MLflow server) or PGPASSWORD / ~/.pgpass (PostgreSQL).")
    log.warning(message)
    print(f"warning: {message}", file=sys.stderr)
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        redact_files(Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir)
        if in_multirun():
            redact_files(Path(hydra_cfg.sweep.dir))


def multirun_presets(argv: list[str]) -> list[str]:
    """The ``group=option`` arguments that pick a preset whose YAML declares ``hydra.mode: MULTIRUN``.

    Hydra 1.4 reads ``hydra.mode`` only from the primary config or the command line (a config group that sets
    it is an error), so the command adds ``hydra.mode=MULTIRUN`` to the command line for such presets.
    """
    found = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        group, option = arg.lstrip("+~").split("=", 1)
        if "." not in group and "," not in option and _declares_multirun(group, option):
            found.append(arg)
    return found


def _declares_multirun(group: str, option: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``conf/<group>/<option>.yaml``, or an option of the same group it builds on, says MULTIRUN."""
    import yaml

    path = config_dir() / group / f"{option}.yaml"
    if option in seen or not path.is_file():
        return False
    preset = yaml.safe_load(path.read_text()) or {}
    if str((preset.get("hydra") or {}).get("mode", "")).upper() == "MULTIRUN":
        return True
    parents = [entry for entry in preset.get("defaults") or [] if isinstance(entry, str) and entry != "_self_"]
    return any(_declares_multirun(group, parent, seen | {option}) for parent in parents)


def model_uri_alias(arg: str) -> str:
    """``model=models:/name/1`` means the ``model_uri`` key: ``model`` alone would select the ``model`` config
    group, and no group option is a URI, so the two cannot be confused."""
    key, _, value = arg.partition("=")
    return f"model_uri={value}" if key == "model" and ":/" in value else arg


def with_preset_mode(argv: list[str]) -> list[str]:
    """``argv`` plus ``hydra.mode=MULTIRUN`` when a sweep preset is picked and the mode is not given already."""
    given = any(a in ("-m", "--multirun") or a.startswith(("hydra.mode=", "hydra/mode=")) for a in argv)
    if given or not multirun_presets(argv[1:]):
        return argv
    return [*argv, "hydra.mode=MULTIRUN"]


# Renamed in every command that reads a data config (2026-12); per-command renames add to these.
RENAMED_EVERYWHERE = {"data.group_column": "data.group_by"}


def renamed_option(argv: list[str], renamed: dict[str, str]) -> str | None:
    """The one-line error for an option given by its old name (Hydra's own says only that the key is unknown)."""
    for arg in argv:
        key = arg.lstrip("+~").split("=", 1)[0]
        if key in renamed:
            return (f"{key}= is now {renamed[key]}= (one spelling across the commands: output_dir= for a folder, "
                    f"output= for a file, group_by= for the column whose groups stay together); give "
                    f"{arg.replace(key, renamed[key], 1)}")
    return None


def command(config_name: str, before_hydra: Callable[[list[str]], list[str]] | None = None,
            renamed: dict[str, str] | None = None) -> Callable[[Callable[[Any], Any]], Callable[[], Any]]:
    """``@hydra.main`` over ``conf/<config_name>.yaml`` plus what the module docstring lists. ``before_hydra``
    sees the command line first: it returns overrides to add (settled defaults), or stops the command with one
    line (a UserError) where Hydra would fail raw. ``renamed``: {old option: new one}, refused in one line."""
    import hydra

    def decorate(task: Callable[[Any], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def guarded(cfg):
            guard_credentials()
            return exit_on_user_error(lambda: task(cfg))

        main = hydra.main(config_path=str(config_dir()), config_name=config_name,
                          execution_whitelist=list(trusted_targets()))(guarded)

        @functools.wraps(task)
        def entry() -> Any:
            # MLflow's own artifact progress bars would end up in log files and bury a command's summary
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            redact_standard_streams()  # before Hydra sets up logging, so its console handlers write through it
            sys.argv = with_preset_mode([model_uri_alias(arg) for arg in sys.argv])
            old_name = renamed_option(sys.argv[1:], {**RENAMED_EVERYWHERE, **(renamed or {})})
            if old_name:
                print(f"error: {old_name}", file=sys.stderr)
                sys.exit(2)
            try:
                sys.argv += before_hydra(sys.argv[1:]) if before_hydra else []
            except UserError as problem:
                print(f"error: {problem}", file=sys.stderr)
                sys.exit(2)
            return main()

        return entry

    return decorate
