"""Docs that cannot drift: every command line the README, the docs site and the config comments show is composed
with Hydra against the real configs (nothing is run), and every list of options they give is the real one.

A renamed key, a removed option or a preset left out of a list fails here, naming the file and line.

What counts as a command: ``python -m mmbehave.<command> ...`` (also after ``torchrun ... -m``, after environment
variables, or as a console script ``mmbehave-<command>``) in a fenced code block or an inline code span of a
Markdown file, and in an indented example of a config comment (``#   python -m ...``; a comment with one
space after ``#``, such as a config's synopsis line, is not an example). Shell rules apply: ``\\`` continues a
line, ``#`` starts a comment, ``&&`` / ``;`` / ``|`` end a command. ``<placeholders>`` become a dummy value, a
lone ``...`` (more overrides) is dropped, and ``--multirun`` / ``-m`` are dropped while their overrides are kept;
a sweep (``a=1,2``, ``choice(...)``, ``range(...)``) is composed with its first value.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest
from helpers import compose_config
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from mmbehave.core.cli import model_uri_alias
from mmbehave.core.paths import config_dir

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
MARKDOWN = [ROOT / "README.md", ROOT / "experiments" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CONFIGS = sorted(CONF.rglob("*.yaml"))
PLACEHOLDER = "1"  # a <placeholder>'s stand-in: a valid int, float, string and path alike
# Options that exist to be built on, never picked on their own: left out of the lists users read.
BASES = {"debug": {"default"}}
# Hydra flags that take a value (``--cfg job``): both are dropped.
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp", "--config-name",
                    "-cn", "--config-dir", "-cd", "--experimental-rerun"}
COMMAND_ENDS = {"&&", "||", ";", "|", ">", ">>", "2>", "&"}


@dataclass(frozen=True)
class Command:
    where: str                 # file:line
    text: str                  # the line as written (continuations joined)
    command: str               # train, evaluate, ...
    overrides: tuple[str, ...]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---------------------------------------------------------------------------------------------- extraction


def logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Lines with their ``\\`` continuations joined, each numbered by its first line."""
    joined, start, parts = [], None, []
    for number, line in lines:
        if start is None:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        joined.append((start, " ".join(part.strip() for part in parts)))
        start, parts = None, []
    if parts:
        joined.append((start, " ".join(part.strip() for part in parts)))
    return joined


def markdown_snippets(path: Path) -> list[tuple[int, str]]:
    """A Markdown file's shell lines: those of fenced code blocks (continuations joined), and inline code spans."""
    snippets, block, fence = [], [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            opening = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if opening:
                fence, language, block = opening.group(1), opening.group(2).lower(), []
                continue
            for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", line):
                snippets.append((number, span.replace("\\|", "|")))
        elif stripped.startswith(fence):
            if language in ("", "bash", "sh", "shell", "console", "text"):
                snippets += logical_lines(block)
            fence = None
        else:
            block.append((number, line))
    return snippets


def config_snippets(path: Path) -> list[tuple[int, str]]:
    """A config file's example command lines: comment lines indented after the ``#`` (``#   python -m ...``)."""
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        example = re.match(r"\s*#\s{2,}(\S.*)$", line)
        if example:
            examples.append((number, example.group(1)))
        elif examples and examples[-1][0] != -1:
            examples.append((-1, ""))  # a break: continuations never join across it
    return logical_lines([(n, text) for n, text in examples if n != -1])


def unquoted_brace_list(text: str) -> bool:
    """Whether ``text`` holds ``{a,b}`` outside quotes: bash would expand it into several words."""
    quote, depth, comma, previous = None, 0, False, " "
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return False  # a shell comment
        elif char == "{":
            depth, comma = depth + 1, False
        elif char == "}" and depth:
            if comma:
                return True
            depth -= 1
        elif char == "," and depth:
            comma = True
        elif char.isspace():
            depth = 0
        previous = char
    return False


@lru_cache(maxsize=None)
def console_scripts() -> set[str]:
    import tomllib

    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def commands_in(where: str, text: str) -> list[Command]:
    """Every mmbehave command in one shell line."""
    text = re.sub(r"<[^<>]*>", PLACEHOLDER, text.replace("…", "..."))
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return []
    found = []
    for i, word in enumerate(words):
        module = None
        if word == "-m" and i + 1 < len(words) and re.fullmatch(r"mmbehave\.[a-z_]+", words[i + 1]):
            module, first = words[i + 1].removeprefix("mmbehave."), i + 2
        elif word in console_scripts() and all("=" in w for w in words[:i]):
            module, first = word.removeprefix("mmbehave-").replace("-", "_"), i + 1
        if module is None:
            continue
        overrides, skip = [], False
        for arg in words[first:]:
            if arg in COMMAND_ENDS:
                break
            if skip:
                skip = False
            elif arg in FLAGS_WITH_VALUE:
                skip = True
            elif arg.startswith("-") or arg == "...":
                continue  # --multirun, -m, --help, --resolve; "..." stands for more overrides
            else:
                overrides.append(arg)
        found.append(Command(where, text.strip(), module, tuple(overrides)))
    return found


def source_snippets(path: Path) -> list[tuple[int, str]]:
    """The lines of a module's strings (docstrings, messages; an f-string's ``{...}`` as a placeholder) that
    show a command: what a user copies from a docstring or an error message must work when pasted."""
    import ast

    snippets = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(part.value if isinstance(part, ast.Constant) else PLACEHOLDER for part in node.values)
        else:
            continue
        text = text.replace("``", "").replace("`", " ")
        # an example line starts with the command (a usage block), or is a whole string naming one (a message's
        # example, such as MAKE_FOLDS); a command named mid-sentence in prose is not an example
        snippets += [(node.lineno + offset, line) for offset, line in enumerate(text.splitlines())
                     if re.match(r"\s*(python -m mmbehave\.|mmbehave-)", line)]
    return snippets


def all_commands() -> list[Command]:
    commands = []
    for path in MARKDOWN:
        for number, text in markdown_snippets(path):
            commands += commands_in(f"{relative(path)}:{number}", text)
    for path in CONFIGS:
        for number, text in config_snippets(path):
            commands += commands_in(f"{relative(path)}:{number}", text)
    for path in sorted((ROOT / "mmbehave").rglob("*.py")):
        for number, text in source_snippets(path):
            commands += commands_in(f"{relative(path)}:{number}", text)
    return commands


COMMANDS = all_commands()


# ---------------------------------------------------------------------------------------------- composing


def first_of_sweeps(overrides: tuple[str, ...]) -> list[str]:
    """The overrides as the CLI reads them (``model=<uri>`` is ``model_uri``), each sweep at its first value."""
    parser = OverridesParser.create()
    composed = []
    for arg in map(model_uri_alias, overrides):
        override = parser.parse_override(arg)
        if not override.is_sweep_override():
            composed.append(arg)
        elif override.is_interval_sweep():
            composed.append(f"{override.get_key_element()}={override.value().start}")
        else:
            composed.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
    return composed


@lru_cache(maxsize=None)
def compose_error(command: str, overrides: tuple[str, ...]) -> str | None:
    """None when the command's config composes with these overrides, else Hydra's complaint."""
    if not (CONF / f"{command}.yaml").is_file():
        return f"no command mmbehave.{command} (no conf/{command}.yaml)"
    try:
        compose_config(first_of_sweeps(overrides), config_name=command)
    except Exception as error:  # Hydra raises several kinds; each is the answer
        return f"{type(error).__name__}: {error}"
    return None


def test_the_docs_show_commands():
    """The extraction finds what it should: a sanity check, so an empty list cannot pass everything below."""
    places = {c.where.split(":")[0] for c in COMMANDS}
    assert {"README.md", "docs/camtrap_dp.md", "conf/hardware/ddp.yaml", "mmbehave/predict.py",
            "mmbehave/domain/folds.py", "mmbehave/training/run.py"} <= places
    assert {c.command for c in COMMANDS} >= {"train", "evaluate", "predict", "export", "report", "benchmark",
                                             "preprocess", "cache", "import_camtrap_dp", "split"}


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.command}" for c in COMMANDS])
def test_every_command_in_the_docs_composes(command: Command):
    error = compose_error(command.command, command.overrides)
    if error is not None:
        pytest.fail(f"{command.where}: `{command.text}` does not compose:\n{error}", pytrace=False)
    if unquoted_brace_list(command.text):
        pytest.fail(f"{command.where}: `{command.text}`: bash expands an unquoted {{a,b}} into several words: "
                    "put the override in quotes", pytrace=False)


# ---------------------------------------------------------------------------------------------- option lists


@lru_cache(maxsize=None)
def hydra_groups() -> dict[str, set[str]]:
    """Every config group Hydra sees (conf/ and plugins, hydra/* included) with its options."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir())):
        loader = GlobalHydra.instance().config_loader()
        groups, pending = {}, [""]
        while pending:
            parent = pending.pop()
            for name in loader.list_groups(parent):
                group = f"{parent}/{name}" if parent else name
                groups[group] = set(loader.get_group_options(group))
                pending.append(group)
    return groups


def offered(group: str) -> set[str]:
    return hydra_groups()[group] - BASES.get(group, set())


def option_list_comments() -> list[tuple[str, str, list[str]]]:
    """``- group: default  # a | b (note) | c: what`` in any config's defaults list: (where, group, [a, b, c]).
    In a group's option (conf/model/multimodal.yaml), ``- heads:`` is the group model/heads; ``override /x`` is x."""
    found = []
    for path in CONFIGS:
        here = str(path.parent.relative_to(CONF))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            entry = re.match(r"\s*- (override /|/)?([\w/]+): *[\w+]+ *# *(.*)$", line)
            if entry and "|" in entry.group(3):
                group = entry.group(2) if entry.group(1) or here == "." else f"{here}/{entry.group(2)}"
                listed = re.findall(r"(?:^|\|)\s*([\w+]+)", entry.group(3))
                found.append((f"{relative(path)}:{number}", group, listed))
    return found


OPTION_LISTS = option_list_comments()


def test_config_comments_list_options():
    assert {group for _, group, _ in OPTION_LISTS} >= {"data", "video_encoder", "audio_encoder", "fusion",
                                                       "optimizer", "hardware", "experiment", "modalities",
                                                       "hparams_search", "debug"}


@pytest.mark.parametrize("where,group,listed", OPTION_LISTS, ids=[w for w, _, _ in OPTION_LISTS])
def test_a_config_comment_lists_every_option_of_its_group(where, group, listed):
    assert set(listed) == offered(group), (
        f"{where}: the comment lists {' | '.join(listed)}; conf/{group}/ offers {' | '.join(sorted(offered(group)))}")


def test_every_selectable_group_has_its_options_listed():
    """A new group in train.yaml's defaults list comes with its list of options (or has only one)."""
    listed = {group for _, group, _ in OPTION_LISTS}
    text = (CONF / "train.yaml").read_text()
    for group in re.findall(r"^\s*- ([\w/]+): ", text, flags=re.M):
        if group != "hydra" and len(offered(group)) > 1:
            assert group in listed, f"conf/train.yaml: `- {group}:` has no `# a | b | c` comment"


def test_the_config_groups_table_lists_every_option():
    """docs/configuration.md's table of groups: each row's options are the group's options, no more, no less."""
    rows = {}
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        group = re.fullmatch(r"`([\w/]+)`", cells[0]) if len(cells) >= 3 else None
        if group and group.group(1) in hydra_groups():
            rows[group.group(1)] = set(re.findall(r"`([\w+]+)`", cells[1]))
    assert set(rows) >= {"data", "video_encoder", "audio_encoder", "fusion", "model/heads", "optimizer",
                         "hardware", "experiment", "hparams_search", "modalities", "debug"}
    for group, options in rows.items():
        assert options == offered(group), (
            f"docs/configuration.md, row `{group}`: lists {sorted(options)}, conf offers {sorted(offered(group))}")


def group_mentions(text: str) -> list[tuple[str, str]]:
    """``group=option`` mentions in text whose group is a config group: [(group, option)]."""
    found = []
    for match in re.finditer(r"(?<![\w.+~/$-])([a-z_]+(?:/[a-z_]+)*)=([\w+-]+)(?![\w+-]*:/)", text):
        if match.group(1) in hydra_groups():
            found.append((match.group(1), match.group(2)))
    return found


def mention_sources() -> list[tuple[str, str]]:
    """(file:line, text) of every docs line and every config comment line."""
    sources = []
    for path in MARKDOWN:
        sources += [(f"{relative(path)}:{n}", line) for n, line in enumerate(path.read_text().splitlines(), 1)]
    for path in CONFIGS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "#" in line:
                sources.append((f"{relative(path)}:{number}", line[line.index("#"):]))
    return sources


def test_every_group_option_named_in_docs_and_comments_exists():
    """Prose too: `experiment=seed_scale` or `hardware=tpu` anywhere in the docs or a config comment fails."""
    wrong = [f"{where}: {group}={option} (conf/{group}/ offers {', '.join(sorted(hydra_groups()[group]))})"
             for where, text in mention_sources() for group, option in group_mentions(text)
             if option not in hydra_groups()[group] and option != "null"]
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------------- keys in prose

# Dotted names the docs give that are not config keys: MLflow's own tag names.
NOT_CONFIG_KEYS = {"mlflow.parentRunId"}
FILE_SUFFIXES = {"md", "json", "csv", "png", "yaml", "yml", "pth", "pt", "onnx", "py", "txt", "npy", "log", "db", "mp4",
                 "html"}


def key_paths(node, prefix: str = "") -> set[str]:
    paths = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths |= {path} | key_paths(value, path)
    return paths


@lru_cache(maxsize=None)
def known_keys() -> set[str]:
    """Every key of every command's config, and of train.yaml with each option of each of its groups picked."""
    from omegaconf import OmegaConf

    configs = [compose_config([], config_name=path.stem) for path in sorted(CONF.glob("*.yaml"))]
    for group in re.findall(r"^\s*- ([\w/]+): ", (CONF / "train.yaml").read_text(), flags=re.M):
        if group != "hydra":
            configs += [compose_config([f"{group}={option}"]) for option in sorted(offered(group))]
    configs += [compose_config([f"model/heads={option}"]) for option in sorted(offered("model/heads"))]
    return set().union(*(key_paths(OmegaConf.to_container(cfg, resolve=False)) for cfg in configs))


def key_mentions() -> list[tuple[str, str]]:
    """(file:line, key) for each dotted config key the docs name in a code span (``data.num_frames``,
    ``hardware.num_workers=0``) and each one a config comment names; ``hydra.*``, ``+new.keys`` and
    ``<placeholders>`` aside."""
    tops = {key for key in known_keys() if "." not in key} - {"hydra"}
    pattern = r"([a-z_]\w*(?:\.\w+)+)"
    found = []
    for where, text in mention_sources():
        spans = re.findall(r"`([^`]+)`", text) if where.endswith(".md", 0, where.rindex(":")) else [text]
        for span in spans:
            words = span.split() if where.endswith(".md", 0, where.rindex(":")) else re.findall(
                rf"(?<![\w./$+-]){pattern}(?![\w(/-])", span)
            for word in words:
                key = re.fullmatch(rf"{pattern}(?:=.*)?", word)
                if not key or "<" in word or key.group(1).split(".")[0] not in tops:
                    continue
                if key.group(1).rsplit(".", 1)[1] in FILE_SUFFIXES:
                    continue
                found.append((where, key.group(1)))
    return found


def test_every_config_key_named_in_the_docs_exists():
    """`data.num_workers` where the key is `hardware.num_workers` fails here, in prose as in commands."""
    wrong = [f"{where}: {key}" for where, key in key_mentions() if key not in known_keys() | NOT_CONFIG_KEYS]
    assert not wrong, "keys no config has:\n" + "\n".join(wrong)


# ---------------------------------------------------------------------------------------------- links


def test_the_readme_links_to_files_that_exist():
    """The docs site checks its own links (mkdocs build --strict); the README's are checked here."""
    text = (ROOT / "README.md").read_text()
    missing = [target for target in re.findall(r"\]\(([^)\s]+)\)", text)
               if not re.match(r"[a-z]+://|#|mailto:", target) and not (ROOT / target.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_every_test_file_the_docs_name_exists():
    """The Reliability table names the test that holds each guarantee: that test must exist."""
    named = {(where, name) for where, text in mention_sources() for name in re.findall(r"\b(test_\w+\.py)\b", text)}
    missing = [f"{where}: {name}" for where, name in sorted(named) if not (ROOT / "tests" / name).is_file()]
    assert not missing, "\n".join(missing)


def test_the_readme_stays_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 210, f"README.md has {len(lines)} lines: move reference material to docs/"
    first_block = re.search(r"```bash\n(.*?)```", "\n".join(lines), flags=re.S).group(1).strip().splitlines()
    assert first_block == ['pip install -e . && python -m mmbehave.train',
                           'pip install -e ".[test]" && python -m pytest']


def test_the_docs_home_says_what_the_readme_says_about_time():
    """One sentence to edit when the timings change: the docs' home page repeats the README's "How long" lines."""
    def how_long(path: Path) -> str:
        return re.search(r"\*\*How long\.\*\*.*?\n\n", path.read_text(), flags=re.S).group(0)

    assert how_long(ROOT / "docs" / "index.md") == how_long(ROOT / "README.md"), (
        "docs/index.md's **How long.** paragraph differs from README.md's: copy the README's")


def test_every_docs_page_is_in_the_site_navigation():
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, list):
            for item in entry:
                yield from pages(item)
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from pages(value)

    in_nav = set(pages(nav))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk <= in_nav, f"pages missing from mkdocs.yml's nav: {sorted(on_disk - in_nav)}"
