"""checks.yaml text -> plain values, each with its file position; ${ENV} substitution and located issues."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from prober.config.limits import compose
from prober.config.redaction import Redactor
from prober.model import ProberError

_YamlPath = tuple[str | int, ...]
_VARIABLE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ConfigIssue(NamedTuple):
    """One configuration problem, located in the file."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ProberError):
    """The configuration is invalid; `issues` lists every problem found, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def _quote(value: Any, redact: Callable[[str], str] | None = None) -> str:
    if isinstance(value, Path):
        value = str(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    if redact is not None:  # before shortening, which could cut a secret in two
        text = redact(text)
    return text if len(text) <= 80 else text[:77] + "..."


# -- loading: YAML nodes -> plain values + where each came from ---------------------------------------


class _Tree:
    """Walks the composed YAML into plain values, remembering each key's and value's position."""

    def __init__(self, filename: str, env: Mapping[str, str]) -> None:
        self.filename = filename
        self.env = env
        self.keys: dict[_YamlPath, tuple[int, int]] = {}
        self.values: dict[_YamlPath, tuple[int, int]] = {}
        self.display: dict[_YamlPath, str] = {}  # strings with ${NAME} left in, where substituted
        self.secrets: dict[str, str] = {}  # value -> NAME
        self.bad: set[_YamlPath] = set()  # already reported: later errors there would only repeat it
        self.issues: list[ConfigIssue] = []
        self._loader = yaml.SafeLoader("")
        self._redactor = (0, Redactor({}))  # (how many secrets it knows, the redactor)

    def redact(self, text: str) -> str:
        """`text` with the secrets substituted so far replaced by their ${NAME}."""
        if self._redactor[0] != len(self.secrets):
            self._redactor = (len(self.secrets), Redactor(self.secrets))
        return self._redactor[1](text)

    def quote(self, value: Any) -> str:
        """`value` quoted for a message, its secrets redacted."""
        return _quote(value, self.redact)

    def issue(self, path: _YamlPath, where: tuple[int, int] | yaml.Node, message: str) -> None:
        """Record a problem at a node or position."""
        line, col = _position(where) if isinstance(where, yaml.Node) else where
        self.issues.append(ConfigIssue(self.filename, line, col, _format_path(path), message))

    def load(self, text: str) -> Any:
        """The plain value of the document, or None after recording why there is none."""
        try:
            root = compose(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = exc.problem or "invalid YAML"
            self.issue((), where, f"{problem} ({exc.context})" if exc.context else problem)
            return None
        except yaml.YAMLError as exc:
            self.issue((), (1, 1), f"invalid YAML: {exc}")
            return None
        if root is None:
            self.issue((), (1, 1), "the file is empty: it needs at least a checks: list")
            return None
        data = self._walk(root, (), set())
        if not isinstance(data, dict):
            self.issue(
                (), root, f"the top level must be a mapping with a checks: list, not {self.quote(data)}"
            )
            return None
        return data

    def _walk(self, node: yaml.Node, path: _YamlPath, stack: set[int]) -> Any:
        self.values[path] = _position(node)
        self.display.pop(path, None)  # a key overriding a merged one: forget what the merged value said
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in stack:
            self.issue(path, node, "a recursive alias is not allowed")
            self.bad.add(path)
            return None
        stack.add(id(node))  # the nodes being walked, from the root here: an alias to one recurses
        try:
            return self._walk_collection(node, path, stack)
        finally:
            stack.discard(id(node))

    def _walk_collection(self, node: yaml.Node, path: _YamlPath, stack: set[int]) -> Any:
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(child, (*path, i), stack) for i, child in enumerate(node.value)]
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:  # merges first: the mapping's own keys override them
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in merged:
                    value = self._walk(source, path, stack)
                    if isinstance(value, dict):
                        out.update({k: v for k, v in value.items() if k not in out})
                    else:
                        self.issue(path, source, "<< must merge a mapping")
        own: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.issue(path, key_node, "a key must be a plain value, not a list or mapping")
                continue
            key = key_node.value  # keys stay text: `on:` or `1:` are names here, not booleans or numbers
            if key in own:
                self.issue((*path, key), key_node, f'duplicate key "{key}" (first at line {own[key][0]})')
                continue
            own[key] = self.keys[(*path, key)] = _position(key_node)
            out[key] = self._walk(value_node, (*path, key), stack)
        self.values[path] = _position(node)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: _YamlPath) -> Any:
        try:
            value = self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: a timestamp like 2022-13-45
            self.issue(path, node, f"{_quote(node.value)} cannot be read: {getattr(exc, 'problem', exc)}")
            self.bad.add(path)
            return None
        if not isinstance(value, str) or "${" not in value:
            return value
        found: dict[str, str] = {}
        result, display, problems = _substitute(value, self.env, found)
        for problem in problems:
            self.issue(path, node, problem)
            self.bad.add(path)
        if display == value == result:  # only $${ escapes
            return result
        self.display[path] = display
        if not node.style:  # unquoted (None, or "" from libyaml): ${N} may stand for a number or a boolean
            tag = self._loader.resolve(yaml.ScalarNode, result, (True, False))  # type: ignore[no-untyped-call]
            try:
                typed = self._loader.construct_object(yaml.ScalarNode(tag, result), deep=True)
            except (yaml.YAMLError, ValueError):
                typed = result
            if not isinstance(typed, str):
                # `confirm: ${CONFIRM}` is a setting, not a secret: redacting every "3" would garble logs.
                return typed
        for secret, name in found.items():
            self.secrets.setdefault(secret, name)
        return result

    def near(self, path: _YamlPath) -> tuple[int, int]:
        """The position of `path`, or of its closest ancestor that has one."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.values:
                return self.values[path[:n]]
        return (1, 1)


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _format_path(path: _YamlPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def _substitute(text: str, env: Mapping[str, str], secrets: dict[str, str]) -> tuple[str, str, list[str]]:
    """(value, display, problems): ${NAME} replaced from env in value, kept in display; $${ is ${."""
    value: list[str] = []
    display: list[str] = []
    problems: list[str] = []
    end = 0
    for match in _VARIABLE.finditer(text):
        value.append(text[end : match.start()])
        display.append(text[end : match.start()])
        end = match.end()
        name = match[1]
        if match[0] == "$${":
            value.append("${")
            display.append("${")
        elif name is None or not _VARIABLE_NAME.fullmatch(name):
            problems.append(
                f"{_quote(match[0])} is not a variable reference: write ${{NAME}}, or $${{ for ${{"
            )
        elif name not in env:
            problems.append(f"environment variable {name} is not set")
        else:
            value.append(env[name])
            display.append(match[0])
            if env[name]:
                secrets.setdefault(env[name], name)
    value.append(text[end:])
    display.append(text[end:])
    return "".join(value), "".join(display), problems
