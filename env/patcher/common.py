"""Transform builders shared by the patch tables."""

from __future__ import annotations

from typing import Mapping

from .engine import Transform

MARK = "# textless-stack:"

# `name: SomeConfig = SomeConfig()`: a dataclass instance as a field default, which
# Python >= 3.11 rejects ("mutable default ... use default_factory").
_INSTANCE_DEFAULT = r"^(?P<indent>[ \t]+)(?P<field>\w+): (?P<type>\w+) = (?P=type)\(\)$"
_FACTORY_DEFAULT = r"^[ \t]+(\w+): (\w+) = field\(default_factory=\2\)  " + MARK + " py311-dataclass$"


def dataclass_defaults(name: str, path: str, count: Mapping[str, int]) -> Transform:
    return Transform(
        name=name,
        path=path,
        find=_INSTANCE_DEFAULT,
        replace=r"\g<indent>\g<field>: \g<type> = field(default_factory=\g<type>)  " + MARK + " py311-dataclass",
        done=_FACTORY_DEFAULT,
        regex=True,
        count=count,
        why="Python >= 3.11 rejects dataclass instances as field defaults",
        example="    common: CommonConfig = CommonConfig()\n",
    )


def route_torch_load(name: str, path: str, count: Mapping[str, int]) -> Transform:
    """`torch.load(` -> our checkpoint policy's `torch_load(` (imported by import_policy)."""
    return Transform(
        name=name,
        path=path,
        find=r"\btorch\.load\(",
        replace="torch_load(",
        done=r"(?<!\.)\btorch_load\(",
        regex=True,
        count=count,
        why="torch >= 2.6 defaults to weights_only=True; the project's policy decides what may be unpickled",
        example="    state_dict = torch.load(checkpoint_path)\n",
    )


def import_policy(name: str, path: str, count: Mapping[str, int], anchor: str = "import torch\n") -> Transform:
    line = "from textless_stack.checkpoint_policy import torch_load  " + MARK + " weights_only policy\n"
    return Transform(
        name=name,
        path=path,
        find=anchor,
        replace=anchor + line,
        done="^" + line.rstrip("\n").replace(".", r"\."),
        count=count,
        why="the policy module that torch_load( calls come from",
    )
