"""The errors package holds every error of the package, and its docstring draws the whole tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import msgspec
import pytest

from cronflow_actors import errors

PACKAGE = Path(errors.__file__).resolve().parents[1]
ERRORS = PACKAGE / "errors"
_ENTRY = re.compile(r"^    (?P<branch>[ │├└─]*)(?P<name>[A-Z]\w+)")


def _exception_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }


def _drawing() -> list[tuple[str, str | None]]:
    """(class, the class drawn as its parent) for each class in the docstring's tree."""
    assert errors.__doc__ is not None
    drawn: list[tuple[str, str | None]] = []
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        found = _ENTRY.match(line)
        if found is None:
            continue
        depth = len(found["branch"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        drawn.append((found["name"], stack[-1][1] if stack else None))
        stack.append((depth, found["name"]))
    return drawn


def test_the_drawing_names_every_exception_class_once() -> None:
    names = [name for name, _ in _drawing()]
    assert sorted(names) == sorted(_exception_classes())
    assert len(names) == len(set(names))


def test_the_drawing_shows_each_class_under_its_base() -> None:
    classes = _exception_classes()
    for name, parent in _drawing():
        if parent is not None:
            assert classes[parent] in classes[name].__bases__, f"{name} is not a {parent}"
        else:
            assert not any(base in classes.values() for base in classes[name].__bases__), name


def test_every_exception_class_is_public() -> None:
    assert sorted(errors.__all__) == sorted(_exception_classes())


def test_no_other_module_defines_an_error_a_caller_sees() -> None:
    # Signals private to a module (a leading underscore, or never raised past it) may stay.
    allowed = {"_Refused", "NotAKey", "FileGoneError", "BrokenChainError", "KeptFull", "Trouble"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(ERRORS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name not in allowed:
                bases = {ast.unparse(base) for base in node.bases}
                if any(re.search(r"(Error|Exception)$", base) for base in bases):
                    found.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert found == []


def test_moved_errors_are_still_importable_from_their_old_places() -> None:
    from cronflow_actors.cli.client import ApiError
    from cronflow_actors.http.problems import Problem
    from cronflow_actors.runtime.testing import ExpectationError

    assert (ApiError, Problem, ExpectationError) == (
        errors.ApiError,
        errors.Problem,
        errors.ExpectationError,
    )


def test_a_name_or_id_of_any_length_is_shown_cut_in_its_error() -> None:
    long = "x" * 100_000
    for error in (
        errors.NotFoundError("flow", long, "this runtime"),
        errors.NotFoundError("run", long),
        errors.UnknownWorkflowError(long, long, ["orders"]),
    ):
        text = str(error)
        assert len(text) < 500, len(text)
        assert "(100000 characters)" in text  # its own, not its repr's (hostile h36 F4)
    assert "registered" in str(errors.NotFoundError("flow", "ordrs", "this runtime"))
    assert "ids are returned" not in str(errors.NotFoundError("flow", "ordrs"))
    assert "'short'" in str(errors.NotFoundError("run", "short"))


def test_a_busy_instance_is_a_503_to_try_again() -> None:
    from cronflow_actors.http.problems import as_problem

    problem = as_problem(errors.InstanceBusyError("r1", 2, "publishing event 'go'"))
    assert (problem.status, problem.slug) == (503, "instance-busy")
    assert problem.headers == {"Retry-After": "5"}
    assert "instance 'r1' is busy (publishing event 'go')" in problem.detail
    assert "try again in a few seconds" in problem.detail


class Item(msgspec.Struct, forbid_unknown_fields=True):
    sku: str


class Order(msgspec.Struct, forbid_unknown_fields=True):
    items: list[Item]


def test_a_schemas_refusal_of_an_unknown_field_names_the_fields_path() -> None:
    """It named its object's: ``$`` for a webhook payload's extra field, where every other
    refusal names the field's own (newcomer h36 F10)."""

    def path(value: object) -> str:
        with pytest.raises(msgspec.ValidationError) as refused:
            msgspec.convert(value, Order)
        return errors.validation_path(refused.value)

    assert path({"items": [], "extra": 1}) == "$.extra"
    assert path({"items": [{"sku": "a", "colour": "red"}]}) == "$.items[0].colour"
    # a name no dotted path writes, in brackets (it was left at its object's: retest h36 R4)
    assert path({"items": [], "a b": 1}) == '$["a b"]'
    assert path({"items": [{"sku": "a", "a.b": 1}]}) == '$.items[0]["a.b"]'
    assert path({"items": [], "café": 1}) == '$["caf\\u00e9"]'
    assert path({"items": [{"sku": 1}]}) == "$.items[0].sku"


def test_an_unknown_workflow_names_the_closest_one_and_how_to_register_it() -> None:
    """A CLI user was told to "call rt.register() first", a call no CLI user can make, and a
    typo got no hint (newcomer h38 F7)."""
    said = str(errors.UnknownWorkflowError("laon", None, ["loan v1", "hire v1"]))
    assert said.startswith("workflow 'laon' is not registered (did you mean 'loan'?)")
    assert "registered: ['loan v1', 'hire v1']" in said
    assert "the app serve was given" in said
    assert "(did you mean" not in str(errors.UnknownWorkflowError("zzz", None, ["loan v1"]))
    # a version missing of a name that is there: no hint of the name itself (review h38 F6)
    version = str(errors.UnknownWorkflowError("loan", "v2", ["loan v1"]))
    assert version.startswith("workflow 'loan' version 'v2' is not registered; registered:")
