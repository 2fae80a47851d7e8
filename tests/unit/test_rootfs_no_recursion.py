"""Nothing under runnc_py/rootfs/ recurses (issue 9 item 7): a hostile layer chooses the
depth, so every walk is a worklist. A static check of the source: no function calls itself,
and nothing calls the recursive `shutil.rmtree` (rootfs/remove.py is the iterative one)."""

from __future__ import annotations

import ast
from pathlib import Path

import runnc_py.rootfs

ROOTFS = Path(runnc_py.rootfs.__file__).parent


def _self_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for call in ast.walk(node):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            name = None
            if isinstance(func, ast.Name):
                name = func.id
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in ("self", "cls")
            ):
                name = func.attr  # a method calling itself (os.mkdir inside mkdir is fine)
            if name == node.name:
                found.append(f"{node.name} (line {call.lineno})")
    return found


def _rmtree_calls(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "rmtree"
    ]


def test_no_function_in_rootfs_calls_itself() -> None:
    offenders = {}
    for path in sorted(ROOTFS.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        bad = _self_calls(tree) + [f"shutil.rmtree (line {n})" for n in _rmtree_calls(tree)]
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


def test_the_check_sees_recursion() -> None:
    sample = "def f(n):\n    return f(n - 1)\nclass A:\n    def g(self):\n        self.g()\n"
    assert len(_self_calls(ast.parse(sample))) == 2
    assert _rmtree_calls(ast.parse("import shutil\nshutil.rmtree('x')\n")) == [2]
