"""The words of a Solo5 guest's command line, encoded for the family of guest that parses it.

One encoder for `create` and `runnc-py exec --net-auto`. The tender hands the guest one string
(at most 8191 bytes) and every guest family splits it its own way; each word we pass (the
container's environment, the network configuration, the application's arguments) must come out
of that split exactly as it went in, or be refused with one line saying why.

* `solo5` (configuration kind `none`): what solo5-spt passes, the arguments joined by single
  spaces, unescaped. The guest splits as it likes; `process.env` is not passed.
* `lkl` (kinds `lkl-json`, `lkl-json-upstream`; and `none` with `org.runnc-py.cmdline=env`): the
  Nabla LKL port (frankenlibc, `platform/solo5/argv.c`) splits like libiberty's `buildargv`:
  whitespace (space, \\t \\n \\v \\f \\r) separates words, `'...'` and `"..."` group and are
  removed, a backslash makes the next character literal, even inside quotes. Then every word
  before `--` is an environment entry, except that a word starting with `-c` or `--config`
  takes the next word as the JSON configuration, and the words after `--` are argv[1..]
  (argv[0] is "solo5"). We put a backslash before every whitespace character, quote and
  backslash, write an empty word as `''`, and pass, as Nabla's runnc did,
  `__RUMP_FDINFO_NET_<device>=4` (the port's one network fd), `process.env`, `--config JSON`,
  `--`, the arguments. An environment entry must be KEY=VALUE and may not start with `-c` or
  `--` (the port would take it for the configuration flag or the end of the environment).
* `mirage` (kind `solo5-cmdline`): MirageOS's bootvar parser (mirage-bootvar `parse_argv`)
  splits on spaces only, `"..."` groups, a backslash makes the next character literal, and
  empty words vanish. We backslash spaces, double quotes and backslashes, and refuse an empty
  argument. The network flags come first; `process.env` is not passed (a MirageOS unikernel
  has no environment and refuses unknown arguments).
* `rumprun` (kind `rumprun-json`): the whole line is one JSON object that rumprun's jsmn
  tokenizer reads without undoing JSON escapes (`lib/librumprun_base/config.c`): each
  `process.env` entry becomes an `"env"` member (putenv), the program name and arguments the
  `"cmdline"` member, which `rumprun_parseargs` splits on space, tab and newline with `'...'`
  and `"..."` grouping and backslash escapes. In that member a `"` must be written `\\"` and a
  backslash `\\\\` (jsmn accepts nothing else after a backslash), which rumprun_parseargs turns
  back into the character; words with whitespace, and empty words, go in single quotes. A
  single quote cannot be written at all (it would need `\\'`, which jsmn refuses), nor a `"` or
  backslash in an environment entry (putenv would get the escape too): both are refused.

Everything is checked after escaping against Solo5's 8191 bytes; a NUL never fits.
"""

from __future__ import annotations

from runnc_py.errors import RunncError
from runnc_py.oci import fastjson
from runnc_py.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from runnc_py.net.facts import NetworkFacts

CMDLINE_MAX = 8191  # Solo5's command line buffer is 8192 bytes with its NUL
LKL_NET_FD = 4  # SOLO5_NET_FD: the Nabla LKL port's Solo5 platform has this one network fd
LKL_FDINFO = "__RUMP_FDINFO_NET_"
WHERE = "guest command line"

# configuration kind -> guest family (see the module docstring); `none` depends on with_env.
FAMILIES: dict[str, str] = {
    "lkl-json": "lkl",
    "lkl-json-upstream": "lkl",
    "solo5-cmdline": "mirage",
    "rumprun-json": "rumprun",
}
LKL_SPACE = " \t\n\v\f\r"  # buildargv's whitespace
LKL_SPECIAL = frozenset(LKL_SPACE + "'\"\\")
MIRAGE_SPECIAL = frozenset(' "\\')
RUMPRUN_SPACE = frozenset(" \t\n")  # rumprun_parseargs's delimiters


class GuestLine(FrozenRecord):
    """What the container asks the guest to see, before any encoding.

    `program` is argv[0] where a family passes one (rumprun); `with_env` is
    `org.runnc-py.cmdline=env`: pass `process.env` to a plain Solo5 guest in the LKL form.
    """

    __slots__ = ("args", "env", "program", "with_env")
    args: tuple[str, ...]
    env: tuple[str, ...]
    program: str
    with_env: bool

    def __init__(
        self,
        args: tuple[str, ...] = (),
        env: tuple[str, ...] = (),
        program: str = "rumprun",
        with_env: bool = False,
    ) -> None:
        self._set(args=args, env=env, program=program, with_env=with_env)


def family(kind: str, with_env: bool = False) -> str:
    """The guest family that parses the command line for configuration KIND."""
    if kind == "none":
        return "lkl" if with_env else "solo5"
    try:
        return FAMILIES[kind]
    except KeyError:
        raise RunncError(f"unknown network configuration kind {kind!r}", where=WHERE) from None


def guest_words(
    kind: str,
    line: GuestLine,
    facts: NetworkFacts | None = None,
    *,
    device_names: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """The command line for LINE as words that the tender joins with single spaces.

    FACTS (None: no network handed over) is rendered as KIND; DEVICE_NAMES are the guest's
    names of the devices in facts order (LKL kinds). Raises RunncError, one line, when a word
    cannot survive the guest's parser or the line outgrows Solo5's 8191 bytes.
    """
    fam = family(kind, line.with_env)
    words = _ENCODERS[fam](kind, line, facts, device_names)
    for word in words:
        _check_bytes(word)
    size = len(" ".join(words).encode())
    if size > CMDLINE_MAX:
        raise RunncError(
            f"{size} bytes after escaping for the {fam} guest; a Solo5 command line holds at "
            f"most {CMDLINE_MAX}",
            where=WHERE,
        )
    return words


# ---------------------------------------------------------------------------- families


def _solo5(
    kind: str, line: GuestLine, facts: NetworkFacts | None, names: Sequence[str] | None
) -> tuple[str, ...]:
    if facts is not None and kind != "none":
        raise RunncError(f"kind {kind!r} is no plain Solo5 command line", where=WHERE)
    return line.args


def _lkl(
    kind: str, line: GuestLine, facts: NetworkFacts | None, names: Sequence[str] | None
) -> tuple[str, ...]:
    words: list[str] = []
    if facts is not None and kind != "none":
        from runnc_py.net.config import guest_config

        config = guest_config(facts, kind, device_names=names)
        if kind == "lkl-json":
            words.append(lkl_word(_fdinfo(facts, names)))
    else:
        config = None
    for i, item in enumerate(line.env):
        words.append(lkl_word(_lkl_env(item, i)))
    if config is not None:
        words += ["--config", lkl_word(config)]
    words.append("--")
    words += [lkl_word(a) for a in line.args]
    return tuple(words)


def _mirage(
    kind: str, line: GuestLine, facts: NetworkFacts | None, names: Sequence[str] | None
) -> tuple[str, ...]:
    if line.with_env:
        raise RunncError(
            "org.runnc-py.cmdline=env: a MirageOS/Solo5 guest has no environment to pass "
            "process.env to",
            where=WHERE,
        )
    flags: list[str] = []
    if facts is not None:
        from runnc_py.net.solo5 import solo5_cmdline_args

        flags = solo5_cmdline_args(facts)
    return tuple(mirage_word(w, i) for i, w in enumerate([*flags, *line.args]))


def _rumprun(
    kind: str, line: GuestLine, facts: NetworkFacts | None, names: Sequence[str] | None
) -> tuple[str, ...]:
    from runnc_py.net.rumprun import net_members

    members = [f'"env":"{_rumprun_env(item, i)}"' for i, item in enumerate(line.env)]
    argv = " ".join(rumprun_word(w, i) for i, w in enumerate((line.program, *line.args)))
    members.append(f'"cmdline":"{argv}"')
    if facts is not None:
        members += net_members(facts)
    return ("{" + ",".join(members) + "}",)


_ENCODERS: dict[
    str,
    Callable[[str, GuestLine, NetworkFacts | None, Sequence[str] | None], tuple[str, ...]],
] = {"solo5": _solo5, "lkl": _lkl, "mirage": _mirage, "rumprun": _rumprun}


# ---------------------------------------------------------------------------- words


def lkl_word(word: str) -> str:
    """WORD as one word of the LKL port's tokenizer (buildargv). Not shlex.quote: POSIX
    single quotes keep a backslash literal, buildargv's do not."""
    if not word:
        return "''"
    return "".join("\\" + c if c in LKL_SPECIAL else c for c in word)


def mirage_word(word: str, index: int = 0) -> str:
    """WORD as one word of MirageOS's bootvar parser; it drops empty words, so we refuse them."""
    if not word:
        raise RunncError(
            f"argument {index} is empty; MirageOS's command-line parser drops empty words",
            where=WHERE,
        )
    return "".join("\\" + c if c in MIRAGE_SPECIAL else c for c in word)


def rumprun_word(word: str, index: int = 0) -> str:
    """WORD as one word of rumprun_parseargs, written inside the `cmdline` JSON string."""
    if "'" in word:
        raise RunncError(
            f"argv[{index}] {_show(word)} has a single quote, which rumprun's JSON command "
            "line cannot carry",
            where=WHERE,
        )
    text = word.replace("\\", "\\\\").replace('"', '\\"')
    return f"'{text}'" if not word or RUMPRUN_SPACE.intersection(word) else text


def _lkl_env(item: str, index: int) -> str:
    where = f"config.json: process.env[{index}]"
    if "=" not in item:
        raise RunncError(f"{_show(item)} is not KEY=VALUE", where=where)
    if item.startswith(("-c", "--")):
        raise RunncError(
            f"{_show(item)} starts with -c or --, which the LKL port reads as its --config flag "
            "or the end of the environment",
            where=where,
        )
    return item


def _rumprun_env(item: str, index: int) -> str:
    where = f"config.json: process.env[{index}]"
    if "=" not in item:
        raise RunncError(f"{_show(item)} is not KEY=VALUE", where=where)
    if '"' in item or "\\" in item:
        raise RunncError(
            f"{_show(item)} has a quote or backslash, which rumprun's JSON reader would pass "
            "on still escaped",
            where=where,
        )
    return item


def _fdinfo(facts: NetworkFacts, names: Sequence[str] | None) -> str:
    """`__RUMP_FDINFO_NET_<device>=4`: the port makes its network device from this word."""
    from runnc_py.net.naming import guest_device_names

    devices = list(names) if names is not None else list(guest_device_names(1))
    if len(facts.interfaces) > 1:
        raise RunncError(
            f"{len(facts.interfaces)} interfaces; the Nabla LKL port on Solo5 drives one network "
            f"device (fd {LKL_NET_FD})",
            where=WHERE,
        )
    return f"{LKL_FDINFO}{devices[0]}={LKL_NET_FD}"


def _check_bytes(word: str) -> None:
    if "\0" in word:
        raise RunncError(f"{_show(word)} contains a NUL byte", where=WHERE)
    try:
        word.encode()
    except UnicodeEncodeError:
        raise RunncError(f"{_show(word)} is not valid UTF-8 text", where=WHERE) from None


def _show(word: str) -> str:
    text = fastjson.dumps(word)
    return text if len(text) <= 60 else text[:57] + '..."'
