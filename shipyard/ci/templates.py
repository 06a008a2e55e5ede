"""``shipyard ci init github|gitlab|jenkins``: ready CI files, checked before they are written.

The files live next to this module (``templates/``) with ``@@NAME@@`` placeholders (GitHub's own
``${{ }}`` syntax rules out ``string.Template``). Each rendered file is checked: YAML must parse and
have the shape its CI expects; the Jenkinsfile must have balanced braces and
``pipeline { stages { stage('...') {...} } }`` with the six stages in order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import AlreadyExists, InputError, UsageError, did_you_mean

KINDS: dict[str, tuple[str, str]] = {  # kind -> (template file, path written, relative to the git root)
    "github": ("github.yml", ".github/workflows/shipyard.yml"),
    "gitlab": ("gitlab-ci.yml", ".gitlab-ci.yml"),
    "jenkins": ("Jenkinsfile", "Jenkinsfile"),
}
JENKINS_STAGES = ("Data Validation", "Preprocessing", "Train", "Evaluate", "Gate", "Deploy")
DEFAULT_INSTALL = 'pip install "shipyard[sklearn]"'


@dataclass(frozen=True)
class TemplateOptions:
    workdir: str = "."  # the project folder, relative to the repository root
    main: str = "main"
    python: str = "3.11"
    install: str = DEFAULT_INSTALL
    prepare: str = "prepare"
    train: str = "train"
    evaluate: str = "evaluate"


def stage_roles(stage_names: list[str]) -> dict[str, str]:
    """Which pipeline stages the Jenkinsfile's Preprocessing, Train and Evaluate stages run."""
    if not stage_names:
        return {}
    def pick(words: tuple[str, ...], fallback: str) -> str:
        return next((s for s in stage_names if any(w in s.lower() for w in words)), fallback)
    return {
        "prepare": pick(("prep", "process", "feature", "clean", "split"), stage_names[0]),
        "train": pick(("train", "fit"), stage_names[-1]),
        "evaluate": pick(("eval", "metric", "score", "test"), stage_names[-1]),
    }


def _yaml_scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain when that parses back to itself, else double-quoted."""
    try:
        if yaml.safe_load(f"k: {text}") == {"k": text}:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text)


def render(kind: str, options: TemplateOptions) -> str:
    """The text of the CI file for ``kind``; raises InputError if it would not parse."""
    if kind not in KINDS:
        raise UsageError(f"unknown CI system {kind!r}; choose one of {', '.join(KINDS)}",
                         hint=did_you_mean(kind, KINDS))
    if kind == "jenkins" and "'" in options.install:
        raise UsageError("--install may not contain single quotes in a Jenkinsfile (it goes inside sh '...')",
                         hint='use double quotes, e.g. --install \'pip install "shipyard[sklearn]"\'')
    workdir = options.workdir.strip("/") or "."
    objects = ".shipyard/objects" if workdir == "." else f"{workdir}/.shipyard/objects"
    text = resources.files("shipyard.ci").joinpath("templates", KINDS[kind][0]).read_text(encoding="utf-8")
    values = {
        "MAIN": options.main, "PYTHON": options.python, "WORKDIR": workdir, "OBJECTS": objects,
        "INSTALL": options.install if kind == "jenkins" else _yaml_scalar(options.install),
        "PREPARE": options.prepare, "TRAIN": options.train, "EVALUATE": options.evaluate,
    }
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = re.findall(r"@@[A-Z_]+@@", text)
    if leftover:
        raise InputError(f"template {KINDS[kind][0]} has unfilled placeholders: {', '.join(sorted(set(leftover)))}")
    check(kind, text)
    return text


def check(kind: str, text: str) -> None:
    """Raise InputError when ``text`` is not a well-formed file for ``kind``."""
    if kind == "jenkins":
        check_jenkinsfile(text)
        return
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"generated {kind} file is not valid YAML: {exc}") from exc
    if kind == "github":
        _check_github(data)
    else:
        _check_gitlab(data)


def _check_github(data: Any) -> None:
    # PyYAML reads the key ``on`` as the boolean True (YAML 1.1); GitHub reads it as the string.
    if not isinstance(data, dict) or not ({"on", True} & set(data)) or not isinstance(data.get("jobs"), dict):
        raise InputError("GitHub workflow needs 'on' and 'jobs'")
    for name, job in data["jobs"].items():
        steps = job.get("steps") if isinstance(job, dict) else None
        if not isinstance(steps, list) or not steps or "runs-on" not in job:
            raise InputError(f"GitHub workflow job {name!r} needs 'runs-on' and a list of steps")
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or not ({"run", "uses"} & set(step)):
                raise InputError(f"GitHub workflow job {name!r} step {i + 1} has neither 'run' nor 'uses'")


def _check_gitlab(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
        raise InputError("GitLab CI file needs a list of 'stages'")
    reserved = {"stages", "variables", "default", "workflow", "include", "image", "services", "cache",
                "before_script", "after_script"}
    jobs = {k: v for k, v in data.items() if k not in reserved and not str(k).startswith(".")}
    if not jobs:
        raise InputError("GitLab CI file defines no job")
    for name, job in jobs.items():
        if not isinstance(job, dict) or not isinstance(job.get("script"), list):
            raise InputError(f"GitLab job {name!r} needs a 'script' list")
        if job.get("stage") not in data["stages"]:
            raise InputError(f"GitLab job {name!r} uses stage {job.get('stage')!r}, not in 'stages'")


_TOKEN = re.compile(
    r"""(?P<comment>//[^\n]*|/\*.*?\*/)
      |(?P<string>'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")
      |(?P<word>[A-Za-z_][A-Za-z0-9_+]*)
      |(?P<punct>[{}()])
      |(?P<other>\S)""",
    re.VERBOSE | re.DOTALL,
)


@dataclass
class Block:
    name: str | None
    arg: str | None
    line: int
    children: list[Block]


def parse_groovy_blocks(text: str) -> Block:
    """The tree of ``name('arg') { ... }`` blocks, ignoring comments and string contents.

    Unbalanced braces or parentheses raise InputError naming the line.
    """
    root = Block(None, None, 0, [])
    stack = [root]
    name: str | None = None
    arg: str | None = None
    parens = 0
    paren_line = 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        value = match.group(0)
        line = text.count("\n", 0, match.start()) + 1
        if kind == "comment":
            continue
        if kind == "string":
            if parens and arg is None:
                arg = value[3:-3] if value[:3] in ("'''", '"""') else value[1:-1]
            continue
        if kind == "word" and not parens:
            name, arg = value, None
        elif value == "(":
            if parens == 0:
                paren_line = line
            parens += 1
        elif value == ")":
            parens -= 1
            if parens < 0:
                raise InputError(f"Jenkinsfile:{line}: ')' without a matching '('")
        elif value == "{":
            if parens:
                raise InputError(f"Jenkinsfile:{paren_line}: '(' is not closed before '{{' on line {line}")
            block = Block(name, arg, line, [])
            stack[-1].children.append(block)
            stack.append(block)
            name, arg = None, None
        elif value == "}":
            if len(stack) == 1:
                raise InputError(f"Jenkinsfile:{line}: '}}' without a matching '{{'")
            stack.pop()
            name, arg = None, None
        elif kind == "other" and not parens:
            name, arg = None, None
    if parens:
        raise InputError(f"Jenkinsfile:{paren_line}: '(' is never closed")
    if len(stack) > 1:
        raise InputError(f"Jenkinsfile:{stack[-1].line}: '{{' of {stack[-1].name or 'a block'} is never closed")
    return root


def check_jenkinsfile(text: str, stages: tuple[str, ...] = JENKINS_STAGES) -> list[str]:
    """Check the declarative structure; returns the stage names in order."""
    root = parse_groovy_blocks(text)
    pipelines = [b for b in root.children if b.name == "pipeline"]
    if len(pipelines) != 1 or len(root.children) != 1:
        raise InputError("Jenkinsfile: expected exactly one top-level 'pipeline { ... }' block")
    stage_blocks = [b for b in pipelines[0].children if b.name == "stages"]
    if len(stage_blocks) != 1:
        raise InputError("Jenkinsfile: 'pipeline' needs exactly one 'stages { ... }' block")
    found = []
    for block in stage_blocks[0].children:
        if block.name != "stage" or not block.arg:
            raise InputError(f"Jenkinsfile:{block.line}: only stage('name') {{ ... }} blocks belong in 'stages'")
        if not any(child.name in ("steps", "stages", "parallel") for child in block.children):
            raise InputError(f"Jenkinsfile:{block.line}: stage {block.arg!r} has no 'steps' block")
        found.append(block.arg)
    if tuple(found) != stages:
        raise InputError(f"Jenkinsfile: stages are {found}, expected {list(stages)}")
    return found


def write(kind: str, repo_root: Path, options: TemplateOptions, *, force: bool = False) -> Path:
    """Render and write the file for ``kind`` under ``repo_root``; refuses to overwrite without force."""
    text = render(kind, options)
    target = repo_root / KINDS[kind][1]
    if target.exists() and not force:
        raise AlreadyExists(f"{target} already exists; nothing was written",
                            hint=f"review it, then rerun with --force to replace it: shipyard ci init {kind} --force")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target
