"""Strict, bounded YAML loading for configuration files (search spaces, reference data).

:func:`load_yaml_file` is ``yaml.safe_load`` (same tags, same Python types) with limits that keep
a hostile or broken file from taking the machine down, and with the strictness the configs are
documented to have:

* **size**: a file larger than :data:`MAX_YAML_BYTES` is refused before it is parsed;
* **aliases**: every alias (``*name``) stands for its whole anchored node; the number of nodes
  reached through aliases, counted with nesting, is at most :data:`MAX_ALIAS_NODES`. The count is
  taken while the document is composed, so a "billion laughs" file is refused after a few hundred
  events, never expanded. Recursive aliases (a node containing an alias to itself) are refused;
* **nodes**: a document has at most :data:`MAX_YAML_NODES` nodes (scalars, sequences, mappings),
  which bounds the time and memory a file under the size limit can take (the composer is pure
  Python: 100k nodes take a few seconds);
* **depth**: nesting deeper than :data:`MAX_YAML_DEPTH` is refused (the composer recurses);
* **duplicate keys** at any depth are errors naming the YAML path, the key and both lines
  (``yaml.safe_load`` silently keeps the last one).

Every problem is raised as one :class:`~nas.errors.ConfigError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nas.errors import ConfigError

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_ALIAS_NODES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "YAMLLimitError",
    "StrictSafeLoader",
    "load_yaml_file",
    "load_yaml_text",
]

#: Largest config file read (1 MiB; the shipped spaces are a few KB).
MAX_YAML_BYTES = 1024 * 1024
#: Most nodes a document may reach through aliases, nested aliases counted expanded.
MAX_ALIAS_NODES = 10_000
#: Most nodes a document may have (a search space has a few hundred).
MAX_YAML_NODES = 100_000
#: Deepest nesting of sequences and mappings (a search space is 4 levels deep).
MAX_YAML_DEPTH = 100

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLLimitError(yaml.YAMLError):
    """A document breaks one of the loader's limits (alias expansion, recursion, nodes, depth)."""


def _line(node_or_event: Any) -> int:
    return node_or_event.start_mark.line + 1


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose composer bounds alias expansion, node count and nesting depth.

    Usable as ``yaml.load(text, Loader=StrictSafeLoader)``; duplicate keys are checked by
    :func:`load_yaml_text` (they need the YAML path, known only once the tree is composed).
    """

    max_alias_nodes: int = MAX_ALIAS_NODES
    max_depth: int = MAX_YAML_DEPTH
    max_nodes: int = MAX_YAML_NODES

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._alias_nodes = 0
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, int] = {}
        self._composed: set[int] = set()  # ids of nodes whose composition has finished

    def _size(self, node: Node) -> int:
        """Number of nodes ``node`` stands for, aliases inside it expanded (memoised)."""
        size = self._sizes.get(id(node))
        if size is None:
            if isinstance(node, SequenceNode):
                size = 1 + sum(self._size(child) for child in node.value)
            elif isinstance(node, MappingNode):
                size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
            else:
                size = 1
            self._sizes[id(node)] = size
        return size

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:  # an undefined alias is reported by PyYAML itself
                if id(node) not in self._composed:
                    raise YAMLLimitError(
                        f"line {_line(event)}: alias *{event.anchor} is recursive (it is inside the "
                        f"node &{event.anchor} it refers to); recursive aliases are not allowed"
                    )
                self._alias_nodes += self._size(node)
                if self._alias_nodes > self.max_alias_nodes:
                    raise YAMLLimitError(
                        f"line {_line(event)}: aliases expand to more than {self.max_alias_nodes} nodes "
                        f"(a YAML alias bomb?); write the values out or use fewer aliases"
                    )
            return super().compose_node(parent, index)
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > self.max_depth:
                event = self.peek_event()
                raise YAMLLimitError(f"line {_line(event)}: nested more than {self.max_depth} levels deep")
            if self._nodes > self.max_nodes:
                event = self.peek_event()
                raise YAMLLimitError(f"line {_line(event)}: more than {self.max_nodes} values in one document")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._composed.add(id(node))
        return node


def _child_path(path: str, key: Any) -> str:
    if isinstance(key, str):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _duplicate_keys(loader: StrictSafeLoader, root: Node) -> list[str]:
    """Every duplicate mapping key in the tree, as ``path: duplicate key 'k' (lines a and b)``."""
    problems: list[str] = []
    seen: set[int] = set()  # nodes reached twice through aliases are checked once
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen or isinstance(node, ScalarNode):
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(node.value))))
            continue
        first: dict[Any, int] = {}
        children = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                continue  # unhashable keys are refused by the constructor
            key = "<<" if key_node.tag == _MERGE_TAG else loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue
            line = _line(key_node)
            if key in first:
                where = f"{path}: " if path else "(top level): "
                lines = f"lines {first[key]} and {line}" if first[key] != line else f"line {line}"
                problems.append(f"{where}duplicate key {key!r} ({lines})")
            else:
                first[key] = line
            children.append((value_node, _child_path(path, key)))
        stack.extend(reversed(children))
    return problems


def load_yaml_text(text: str, source: str = "<yaml>") -> Any:
    """Parse ``text`` like ``yaml.safe_load``, within the module's limits.

    Args:
        text: the document.
        source: name used in errors (the file path).

    Raises:
        ConfigError: invalid YAML, a broken limit, or duplicate keys (every duplicate listed).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    try:
        loader = StrictSafeLoader(text)  # the reader refuses non-printable characters at once
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
    loader.name = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = _duplicate_keys(loader, node)
        if duplicates:
            raise ConfigError(source, duplicates)
        return loader.construct_document(node)
    except YAMLLimitError as exc:
        raise ConfigError(source, [str(exc)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read and parse a YAML file (UTF-8) like ``yaml.safe_load``, within the module's limits.

    Args:
        path: the file.
        max_bytes: refuse larger files (default :data:`MAX_YAML_BYTES`).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: too large, unreadable, not UTF-8, invalid YAML, a broken limit, duplicate keys.
    """
    path = Path(path)
    source = str(path)

    def too_large(size: str) -> ConfigError:
        return ConfigError(
            source, [f"file is {size} bytes, more than the {max_bytes} bytes a config file may have"]
        )

    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise too_large(str(size))
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown, or be a pipe
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    if len(data) > max_bytes:
        raise too_large(f"more than {max_bytes}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x})"]) from None
    return load_yaml_text(text, source)
