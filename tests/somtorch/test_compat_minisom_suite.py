"""MiniSom 2.3.6's own unit tests (``minisom.TestMinisom``), unedited, run against ``somtorch.compat.MiniSom``.

Each test function is rebuilt from its code object with module globals in which ``MiniSom``, ``fast_norm`` and
``_build_iteration_indexes`` are the facade's; everything else (NumPy names, assert helpers) stays MiniSom's.
"""
from __future__ import annotations

import types
import unittest
import warnings

import minisom

from somtorch import compat

REPLACED = {"MiniSom": compat.MiniSom, "fast_norm": compat.fast_norm,
            "_build_iteration_indexes": compat._build_iteration_indexes}


def facade_test_case() -> type[unittest.TestCase]:
    """A copy of ``minisom.TestMinisom`` whose methods see the facade instead of MiniSom."""
    facade_globals = {**vars(minisom), **REPLACED}
    members = {}
    for name, member in vars(minisom.TestMinisom).items():
        if isinstance(member, types.FunctionType):
            members[name] = types.FunctionType(member.__code__, facade_globals, member.__name__,
                                               member.__defaults__, member.__closure__)
    return type("FacadeTestMinisom", (unittest.TestCase,), members)


def test_minisom_suite_passes_against_the_facade(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # test_pickling writes som.p in the working directory
    case = facade_test_case()
    expected = sorted(name for name in vars(minisom.TestMinisom) if name.startswith("test_"))
    assert len(expected) >= 40, "MiniSom's suite looks truncated"
    for name in expected:  # every test really runs the facade, not MiniSom
        assert getattr(case, name).__globals__["MiniSom"] is compat.MiniSom
    assert case.setUp.__globals__["MiniSom"] is compat.MiniSom

    result = unittest.TestResult()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)

    report = "\n".join(f"{test.id()}:\n{trace}" for test, trace in result.failures + result.errors)
    assert result.testsRun == len(expected)
    assert not result.failures and not result.errors, report
    assert not result.skipped and not result.expectedFailures and not result.unexpectedSuccesses


def test_setup_objects_are_facades(tmp_path, monkeypatch):
    """The suite's fixtures are facade instances, so its assertions exercise the facade."""
    monkeypatch.chdir(tmp_path)
    case = facade_test_case()("test_fast_norm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.setUp()
    assert type(case.som) is compat.MiniSom and type(case.hex_som) is compat.MiniSom
    assert type(case.som) is not minisom.MiniSom

