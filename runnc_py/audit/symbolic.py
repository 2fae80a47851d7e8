"""The decompiler's core: symbolic execution of a classic BPF seccomp program.

Every path from the first instruction to a return is followed with A, X and M[0..15] held as
symbolic values (a constant, a seccomp_data word, or an expression over them). A comparison
of a plain word with a constant narrows that word's interval set on each side; anything else
(masks, JSET, arithmetic on loaded words, word-vs-word) becomes a predicate kept on the path
and evaluated concretely when needed. Paths whose intervals become empty are dropped, so the
result is a partition of the input space: each concrete call follows exactly one path.

BPF only jumps forward, so every path ends; a fuzzed program can still branch exponentially,
so the walk stops after MAX_PATHS paths or MAX_STEPS instructions and says it is incomplete.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from runnc_py.audit import intervals as iv
from runnc_py.audit import program as bpf
from runnc_py.audit.emulator import alu, jump
from runnc_py.audit.program import Insn

MAX_PATHS = 20000
MAX_STEPS = 400000
MAX_DEPTH = 48  # arithmetic nested deeper than this ends the path (analysis incomplete)
SMALL_RANGE = 64  # a word with this few candidates is checked value by value

# Symbolic values: ("k", const) | ("f", word index)
#                | ("op", symbol, left, right-or-None, depth)
Value = tuple
M32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Pred:
    """`lhs OP rhs` is TRUTH on this path (a condition the intervals cannot hold)."""

    op: int  # bpf.JEQ / JGT / JGE / JSET
    lhs: Value
    rhs: Value
    truth: bool

    @property
    def words(self) -> frozenset[int]:
        return _fields(self.lhs) | _fields(self.rhs)

    def holds(self, words: Sequence[int]) -> bool | None:
        a, b = evaluate(self.lhs, words), evaluate(self.rhs, words)
        if a is None or b is None:
            return None
        return _compare(self.op, a, b) == self.truth

    def text(self) -> str:
        symbol = {bpf.JEQ: "==", bpf.JGT: ">", bpf.JGE: ">=", bpf.JSET: "&"}[self.op]
        body = f"{render(self.lhs)} {symbol} {render(self.rhs)}"
        if self.op == bpf.JSET:
            return f"{body} {'!=' if self.truth else '=='} 0"
        return body if self.truth else f"!({body})"


@dataclass(frozen=True)
class Path:
    """One way through the program: the word constraints, extra predicates, the return."""

    ranges: tuple[iv.Intervals, ...]
    preds: tuple[Pred, ...]
    ret: Value  # usually ("k", value); RET A of a loaded word is symbolic

    def matches(self, words: Sequence[int]) -> bool:
        if not all(iv.contains(r, w) for r, w in zip(self.ranges, words, strict=True)):
            return False
        return all(p.holds(words) for p in self.preds)

    def result(self, words: Sequence[int]) -> int:
        value = evaluate(self.ret, words)
        return 0 if value is None else value


@dataclass
class Decompiled:
    paths: list[Path] = field(default_factory=list)
    complete: bool = True
    steps: int = 0

    def decide(self, words: Sequence[int]) -> int | None:
        """What the decompiled rules say for one concrete call (None: no path covers it)."""
        for path in self.paths:
            if path.matches(words):
                return path.result(words)
        return None


def evaluate(value: Value, words: Sequence[int]) -> int | None:
    """A symbolic value on concrete seccomp_data words (None: division by zero)."""
    kind = value[0]
    if kind == "k":
        return int(value[1])
    if kind == "f":
        return words[value[1]]
    symbol, left, right = value[1], value[2], value[3]
    a = evaluate(left, words)
    b = evaluate(right, words) if right is not None else 0
    if a is None or b is None:
        return None
    return _apply(symbol, a, b)


_OP_OF = {symbol: op for op, symbol in bpf.ALU_OPS.items()}


def _apply(symbol: str, a: int, b: int) -> int | None:
    return alu(_OP_OF[symbol], a, b)


def render(value: Value) -> str:
    kind = value[0]
    if kind == "k":
        return hex(value[1]) if value[1] > 9 else str(value[1])
    if kind == "f":
        return bpf.FIELD_NAMES[value[1]]
    symbol, left, right = value[1], value[2], value[3]
    if symbol == "neg":
        return f"-({render(left)})"
    return f"({render(left)} {symbol} {render(right)})"


_compare = jump


@functools.lru_cache(maxsize=65536)
def _fields(value: Value) -> frozenset[int]:
    if value[0] == "f":
        return frozenset((value[1],))
    if value[0] == "op":
        right = _fields(value[3]) if value[3] is not None else frozenset()
        return _fields(value[2]) | right
    return frozenset()


def depth(value: Value) -> int:
    return int(value[4]) if value[0] == "op" else 0


_FOLDABLE = {"+": lambda a, b: (a + b) & M32, "&": lambda a, b: a & b,
             "|": lambda a, b: a | b, "^": lambda a, b: a ^ b}


def _alu_value(symbol: str, a: Value, b: Value | None) -> Value:
    if a[0] == "k" and (b is None or b[0] == "k"):
        result = _apply(symbol, a[1], b[1] if b is not None else 0)
        if result is not None:
            return ("k", result)
    if b is not None and b[0] == "k":
        # Identities that make a loaded word a constant or leave it unchanged (libseccomp
        # masks the high word of a 32-bit masked comparison with 0).
        if (symbol in ("&", "*") and b[1] == 0) or (symbol == "|" and b[1] == M32):
            return ("k", b[1])
        if (symbol in ("+", "-", "|", "^", "<<", ">>") and b[1] == 0) or (
            symbol in ("&",) and b[1] == M32) or (symbol in ("*", "/") and b[1] == 1):
            return a
        if symbol == "-":  # a - k == a + (-k): lets chains of constants fold
            symbol, b = "+", ("k", -b[1] & M32)
        if symbol in _FOLDABLE and a[0] == "op" and a[1] == symbol and a[3][0] == "k":
            return _alu_value(symbol, a[2], ("k", _FOLDABLE[symbol](a[3][1], b[1])))
    return ("op", symbol, a, b, 1 + max(depth(a), depth(b) if b is not None else 0))


# Interval a word must lie in for `word OP k` to be TRUTH (JEQ/JGT/JGE only).
def _narrowing(op: int, k: int, truth: bool) -> iv.Intervals:
    if op == bpf.JEQ:
        return ((k, k),) if truth else iv.complement(((k, k),))
    if op == bpf.JGT:
        return ((k + 1, M32),) if truth else ((0, k),)
    return ((k, M32),) if truth else ((0, k - 1),)  # JGE


# `k OP word` written as a condition on the word.
def _narrowing_flipped(op: int, k: int, truth: bool) -> iv.Intervals:
    if op == bpf.JEQ:
        return _narrowing(op, k, truth)
    if op == bpf.JGT:  # k > w  <=>  w <= k - 1
        return ((0, k - 1),) if truth else ((k, M32),)
    return ((0, k),) if truth else ((k + 1, M32),)  # k >= w


class _Walker:
    def __init__(self, insns: Sequence[Insn]) -> None:
        self.insns = insns
        self.out = Decompiled()

    def run(self) -> Decompiled:
        start = (0, ("k", 0), ("k", 0), (("k", 0),) * bpf.MEM_WORDS,
                 (iv.FULL32,) * 16, ())
        stack = [start]
        while stack:
            if len(self.out.paths) >= MAX_PATHS or self.out.steps >= MAX_STEPS:
                self.out.complete = False
                break
            self._step(stack, *stack.pop())
        return self.out

    def _step(self, stack: list, pc: int, a: Value, x: Value, mem: tuple,  # type: ignore[type-arg]
              ranges: tuple[iv.Intervals, ...], preds: tuple[Pred, ...]) -> None:
        insns = self.insns
        while True:
            self.out.steps += 1
            insn = insns[pc]
            code, cls = insn.code, insn.cls
            pc += 1
            if cls == bpf.LD:
                mode = code & 0xE0
                a = ("f", insn.k // 4) if mode == bpf.ABS else (
                    ("k", insn.k) if mode == bpf.IMM else ("k", 64) if mode == bpf.LEN
                    else mem[insn.k]
                )
            elif cls == bpf.LDX:
                mode = code & 0xE0
                x = ("k", insn.k) if mode == bpf.IMM else ("k", 64) if mode == bpf.LEN \
                    else mem[insn.k]
            elif cls in (bpf.ST, bpf.STX):
                mem = (*mem[: insn.k], a if cls == bpf.ST else x, *mem[insn.k + 1 :])
            elif cls == bpf.MISC:
                if code & 0xF8 == bpf.TXA:
                    a = x
                else:
                    x = a
            elif cls == bpf.ALU:
                op = code & 0xF0
                symbol = bpf.ALU_OPS[op]
                rhs = x if code & bpf.X else ("k", insn.k)
                if op == bpf.DIV and rhs[0] != "k":
                    # X may be zero: that input returns 0 at once (the kernel's rule).
                    zero = Pred(bpf.JEQ, rhs, ("k", 0), True)
                    forked = self._assume(ranges, preds, zero)
                    if forked is not None:
                        self.out.paths.append(Path(forked[0], forked[1], ("k", 0)))
                    nonzero = self._assume(ranges, preds, Pred(bpf.JEQ, rhs, ("k", 0), False))
                    if nonzero is None:
                        return
                    ranges, preds = nonzero
                elif op == bpf.DIV and rhs[1] == 0:
                    self.out.paths.append(Path(ranges, preds, ("k", 0)))
                    return
                a = _alu_value(symbol, a, None if op == bpf.NEG else rhs)
                if depth(a) > MAX_DEPTH:
                    self.out.complete = False
                    return
            elif cls == bpf.RET:
                ret = a if code & 0x18 == bpf.RET_A else ("k", insn.k)
                self.out.paths.append(Path(ranges, preds, ret))
                return
            else:  # JMP
                if code == bpf.JMP | bpf.JA:
                    pc += insn.k
                    continue
                op = code & 0xF0
                rhs = x if code & bpf.X else ("k", insn.k)
                if insn.jt == insn.jf:
                    pc += insn.jt
                    continue
                taken = self._assume(ranges, preds, Pred(op, a, rhs, True))
                fall = self._assume(ranges, preds, Pred(op, a, rhs, False))
                if taken is not None and fall is not None:
                    stack.append((pc + insn.jf, a, x, mem, *fall))
                    ranges, preds = taken
                    pc += insn.jt
                elif taken is not None:
                    ranges, preds = taken
                    pc += insn.jt
                elif fall is not None:
                    ranges, preds = fall
                    pc += insn.jf
                else:
                    return  # cannot happen for consistent constraints; drop the path

    def _assume(self, ranges: tuple[iv.Intervals, ...], preds: tuple[Pred, ...],
                pred: Pred) -> tuple[tuple[iv.Intervals, ...], tuple[Pred, ...]] | None:
        """RANGES and PREDS with PRED added, or None when that is impossible."""
        lhs, rhs, op = pred.lhs, pred.rhs, pred.op
        if lhs[0] == "k" and rhs[0] == "k":
            return (ranges, preds) if _compare(op, lhs[1], rhs[1]) == pred.truth else None
        if op != bpf.JSET and lhs[0] == "f" and rhs[0] == "k":
            return self._narrow(ranges, preds, lhs[1], _narrowing(op, rhs[1], pred.truth))
        if op != bpf.JSET and lhs[0] == "k" and rhs[0] == "f":
            return self._narrow(ranges, preds, rhs[1],
                                _narrowing_flipped(op, lhs[1], pred.truth))
        if lhs == rhs:
            if op == bpf.JSET:  # w & w != 0  <=>  w != 0
                return self._assume(ranges, preds, Pred(bpf.JEQ, lhs, ("k", 0), not pred.truth))
            return (ranges, preds) if (op != bpf.JGT) == pred.truth else None
        words = _fields(lhs) | _fields(rhs)
        decided = _decide_small(pred, ranges, words)
        if decided is not None:
            return (ranges, preds) if decided else None
        added = (*preds, pred)
        if not _predicates_possible(ranges, added, words):
            return None
        return ranges, added

    def _narrow(self, ranges: tuple[iv.Intervals, ...], preds: tuple[Pred, ...], word: int,
                allowed: iv.Intervals) -> tuple[tuple[iv.Intervals, ...], tuple[Pred, ...]] | None:
        narrowed = iv.intersect(ranges[word], allowed)
        if not narrowed:
            return None
        new = (*ranges[:word], narrowed, *ranges[word + 1 :])
        if preds and not _predicates_possible(new, preds, {word}):
            return None
        return new, preds


def _decide_small(pred: Pred, ranges: tuple[iv.Intervals, ...], words: set[int]) -> bool | None:
    """PRED's truth when every word it reads is pinned to one value; else None."""
    concrete = [0] * 16
    for w in words:
        one = iv.single(ranges[w])
        if one is None:
            return None
        concrete[w] = one
    return pred.holds(concrete)


def _predicates_possible(ranges: tuple[iv.Intervals, ...], preds: tuple[Pred, ...],
                         touched: set[int]) -> bool:
    """False only when the predicates on one word provably exclude all its allowed values."""
    for w in touched:
        candidates = iv.values(ranges[w], SMALL_RANGE)
        if candidates is None:
            continue
        mine = [p for p in preds if p.words == {w}]
        if not mine:
            continue
        words = [0] * 16
        possible = False
        for value in candidates:
            words[w] = value
            if all(p.holds(words) for p in mine):
                possible = True
                break
        if not possible:
            return False
    return True


def decompile(insns: Sequence[Insn]) -> Decompiled:
    """Every path of a validated program (bpf.parse), within the limits above."""
    return _Walker(insns).run()
