"""The one way user YAML is read: bounded in size and depth, aliases refused.

Every YAML a user can influence (config files, `--set` values, the Train form's fields, the users
file) goes through `load_yaml`. PyYAML's safe loader never runs code, but `&a [*a, *a, ...]`
repeated a few times expands to billions of nodes from a few hundred characters (an "alias bomb"):
the composer would take minutes of CPU and gigabytes before any schema check sees the result. No
config of this project needs an alias, so the composer refuses the first one it meets.

    >>> load_yaml("lr: 1e-4\\ndevices: [0, 1]", source="run.yaml")
    {'lr': '1e-4', 'devices': [0, 1]}
    >>> load_yaml("a: &x [1]\\nb: *x", source="run.yaml")
    Traceback (most recent call last):
    ...
    trainer_backend.safe_yaml.YamlRefused: run.yaml: YAML aliases (*x) are not accepted; write the value out
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 256 * 1024      # a full run config is a few KiB
MAX_FIELD_BYTES = 16 * 1024      # one form field or one --set value
MAX_DEPTH = 32                   # nesting of mappings and lists


class YamlError(ValueError):
    """YAML that is malformed, too large or uses aliases; the message names its source."""


class YamlRefused(YamlError):
    """YAML refused for its size, nesting or aliases (not for its syntax)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses aliases and nesting deeper than MAX_DEPTH."""

    def __init__(self, stream: str, source: str):
        super().__init__(stream)
        self._source = source
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlRefused(f"{self._source}: YAML aliases (*{event.anchor}) are not accepted; write the value out")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlRefused(f"{self._source}: YAML nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        """A key named twice is refused: YAML would keep the last one silently, so `lr: 1e-4`
        further up would be ignored without a word."""
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise YamlError(f"{self._source}: line {key_node.start_mark.line + 1}: the key '{key}' appears "
                                "twice in one mapping; keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str, source: str, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Parse one YAML document; raises YamlError naming `source` (a file name or a field key)."""
    size = len(text.encode("utf-8", errors="surrogateescape"))
    if size > max_bytes:
        raise YamlRefused(f"{source}: {size:,} bytes of YAML is over the {max_bytes:,}-byte limit")
    loader = _BoundedLoader(text, source)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise YamlError(f"{source}: not valid YAML ({' '.join(str(err).split())})") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """`load_yaml` of a file, checking its size before reading it."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlRefused(f"{path}: {size:,} bytes of YAML is over the {max_bytes:,}-byte limit")
    return load_yaml(path.read_text(encoding="utf-8"), str(path), max_bytes)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """What this project writes reads back through `load_yaml`: no anchors, even for shared objects."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)
