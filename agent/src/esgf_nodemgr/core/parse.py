"""Strict reading of JSON values with errors that name the offending path.

A ``Reader`` walks a decoded JSON value and collects every problem it meets (rather than stopping
at the first), so that ``esgf-nm map check`` can list them all. Each accessor returns a usable
fallback after recording a problem, and ``Reader.raise_if_problems`` turns the list into one
``MapFormatError`` at the end.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar

from esgf_nodemgr.core.errors import MapFormatError

T = TypeVar("T")

_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
}


def describe(value: Any) -> str:
    """A short, safe description of a JSON value for error messages (bounded length)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Reader:
    """Collects problems while reading a JSON document."""

    def __init__(self) -> None:
        self.problems: List[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def raise_if_problems(self) -> None:
        if self.problems:
            raise MapFormatError(self.problems)

    # -- typed accessors -------------------------------------------------------------------
    def obj(self, value: Any, path: str) -> Mapping[str, Any]:
        if isinstance(value, dict):
            return value
        self.problem(path, f"expected an object, got {describe(value)}")
        return {}

    def array(self, value: Any, path: str) -> Sequence[Any]:
        if isinstance(value, list):
            return value
        self.problem(path, f"expected an array, got {describe(value)}")
        return []

    def string(self, value: Any, path: str, *, allow_empty: bool = False,
               max_len: int = 255) -> str:
        if not isinstance(value, str):
            self.problem(path, f"expected a string, got {describe(value)}")
            return ""
        if not allow_empty and not value:
            self.problem(path, "must not be empty")
        elif len(value) > max_len:
            self.problem(path, f"longer than {max_len} characters")
        return str(value)

    def integer(self, value: Any, path: str, *, minimum: Optional[int] = None,
                maximum: Optional[int] = None) -> int:
        # bool is a subclass of int in Python; JSON true is not an integer.
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(path, f"expected an integer, got {describe(value)}")
            return minimum if minimum is not None else 0
        if minimum is not None and value < minimum:
            self.problem(path, f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            self.problem(path, f"must be <= {maximum}, got {value}")
        return value

    def number(self, value: Any, path: str, *, minimum: Optional[float] = None) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self.problem(path, f"expected a number, got {describe(value)}")
            return 0.0
        if value != value or value in (float("inf"), float("-inf")):
            self.problem(path, "must be a finite number")
            return 0.0
        if minimum is not None and value < minimum:
            self.problem(path, f"must be >= {minimum}, got {value}")
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if isinstance(value, bool):
            return value
        self.problem(path, f"expected true or false, got {describe(value)}")
        return False

    def choice(self, value: Any, path: str, allowed: Sequence[str]) -> str:
        text = self.string(value, path)
        if text and text not in allowed:
            self.problem(path, f"must be one of {', '.join(allowed)}; got {describe(value)}")
        return text

    # -- object helpers ----------------------------------------------------------------------
    def keys(self, obj: Mapping[str, Any], path: str, required: Sequence[str],
             optional: Sequence[str] = ()) -> None:
        """Record missing required keys and unknown keys of ``obj``."""
        for key in required:
            if key not in obj:
                self.problem(f"{path}.{key}", "is required")
        known = set(required) | set(optional)
        for key in obj:
            if key not in known:
                self.problem(f"{path}.{key}", "unknown key")

    def mapping(self, value: Any, path: str, item: Callable[[Any, str], T],
                key_check: Optional[Callable[[str, str], None]] = None) -> Dict[str, T]:
        result: Dict[str, T] = {}
        for key, sub in self.obj(value, path).items():
            sub_path = f"{path}[{key!r}]"
            if key_check is not None:
                key_check(key, sub_path)
            result[key] = item(sub, sub_path)
        return result
