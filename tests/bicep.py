"""Read Bicep files through pycep-parser's tree, for the deployment tests.

pycep-parser 0.7.1 turns a file into nested dicts and lists. A string literal and a
reference to a parameter, variable or resource both come out as a plain string; a
function call is `{"function": {"type": ..., "parameters": {...}}}`, an operator
`{"operator": {"type": ..., "operands": {...}}}`, and a conditional resource nests its
body in `config.config`. pycep checks syntax only: an undefined symbol or a property of
the wrong type still parses, which is why the tests check references themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pycep import BicepParser

_PARSER = BicepParser()


def parse(path: Path) -> dict[str, Any]:
    """Return pycep's tree of a Bicep file, raising on a syntax error."""
    # pycep types its result as a TypedDict; the tests index it like plain JSON.
    tree: dict[str, Any] = dict(_PARSER.parse(file_path=path))
    return tree


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """Return a resource's properties, unwrapping the body of an `if (...)` resource."""
    config: dict[str, Any] = resource["config"]
    if "condition" in config and "config" in config:
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def reference(value: Any) -> str | None:
    """Return `a.b.c` for a property access such as `scheduler.properties.endpoint`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "operator" in value:
        operator = value["operator"]
        if operator["type"] == "property_accessor":
            left = reference(operator["operands"]["operand_1"])
            right = reference(operator["operands"]["operand_2"])
            if left is not None and right is not None:
                return f"{left}.{right}"
    return None


class Resolver:
    """Replace references to variables with their values, so a test sees the final shape.

    A string that names a variable is taken as a reference to it, because pycep does not
    tell a literal from a reference. `concat()` of arrays is evaluated and a `for`
    expression is expanded, item by item; other functions and operators stay as parsed.
    """

    def __init__(self, variables: dict[str, Any]) -> None:
        self._variables = variables

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value in self._variables:
            return self.resolve(self._variables[value]["value"])
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "loop_type" in value:
            return self._expand_loop(value)
        function = value.get("function")
        if function is not None and function["type"] == "concat":
            joined: list[Any] = []
            for argument in function["parameters"].values():
                joined.extend(self.resolve(argument))
            return joined
        return {key: self.resolve(item) for key, item in value.items()}

    def _expand_loop(self, loop: dict[str, Any]) -> list[Any]:
        detail = loop["loop_type"]["detail"]
        expanded = []
        for item in self.resolve(detail["array_name"]):
            scope = Resolver({**self._variables, detail["item_name"]: {"value": item}})
            expanded.append(scope.resolve(loop["config"]))
        return expanded
