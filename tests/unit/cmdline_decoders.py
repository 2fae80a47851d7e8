"""Decoders for the guests' command-line rules, written from those rules, not from our encoder.

Each one reads a Solo5 command line the way one guest family does (runnc_py/net/cmdline.py's
docstring and docs/net.md cite the sources), so a test can check that what runnc-py writes comes
out of the guest's own parser as the words it meant. Shared by the unit and integration tests.
"""

from __future__ import annotations

from dataclasses import dataclass

BUILDARGV_SPACE = " \t\n\v\f\r"


def buildargv(line: str) -> list[str]:
    """libiberty's buildargv, as frankenlibc's platform/solo5/argv.c copies it."""
    words: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in BUILDARGV_SPACE:
            i += 1
        word: list[str] = []
        squote = dquote = bsquote = False
        while i < n:
            c = line[i]
            if c in BUILDARGV_SPACE and not (squote or dquote or bsquote):
                break
            if bsquote:
                bsquote = False
                word.append(c)
            elif c == "\\":
                bsquote = True
            elif squote:
                if c == "'":
                    squote = False
                else:
                    word.append(c)
            elif dquote:
                if c == '"':
                    dquote = False
                else:
                    word.append(c)
            elif c == "'":
                squote = True
            elif c == '"':
                dquote = True
            else:
                word.append(c)
            i += 1
        words.append("".join(word))
        while i < n and line[i] in BUILDARGV_SPACE:
            i += 1
        if i >= n:
            return words


@dataclass
class LklParams:
    env: list[str]
    config: str | None
    argv: list[str]


def lkl_params(words: list[str]) -> LklParams:
    """frankenlibc's build_params: env words, the `-c`/`--config` JSON, argv after `--`."""
    env: list[str] = []
    config: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        isconf = False
        if word.startswith("-c") or word.startswith("--config"):
            i += 1
            if i >= len(words):
                break
            config, word, isconf = words[i], words[i], True
        if word.startswith("--"):
            i += 1
            break
        if not isconf:
            env.append(word)
        i += 1
    return LklParams(env, config, ["solo5", *words[i:]])


def lkl_decode(line: str) -> LklParams:
    return lkl_params(buildargv(line))


def mirage_bootvar(line: str) -> list[str]:
    """mirage-bootvar's parse_argv: spaces separate, `"` groups, `\\` escapes, empty words go."""
    words: list[str] = []
    current: list[str] = []
    state = "normal"
    for c in line:
        if state == "escaped":
            current.append(c)
            state = "normal"
        elif state == "quoted_escaped":
            current.append(c)
            state = "quoted"
        elif state == "quoted":
            if c == "\\":
                state = "quoted_escaped"
            elif c == '"':
                state = "normal"
            else:
                current.append(c)
        elif c == " ":
            if current:
                words.append("".join(current))
            current = []
        elif c == "\\":
            state = "escaped"
        elif c == '"':
            state = "quoted"
        else:
            current.append(c)
    if state != "normal":
        raise ValueError("bad input line - either escaped or quoted or both")
    if current:
        words.append("".join(current))
    return words


def jsmn_members(text: str) -> list[tuple[str, str]]:
    """The (key, raw string value) members of a flat JSON object as rumprun's jsmn sees them:
    string tokens are the raw text between the quotes (no escape undone); a backslash must be
    followed by one of `"/\\bfnrtu`. Nested objects come back as (key, raw object text)."""
    assert text.startswith("{") and text.endswith("}"), text
    members: list[tuple[str, str]] = []
    i = 1

    def string(at: int) -> tuple[str, int]:
        assert text[at] == '"', (text, at)
        j = at + 1
        while text[j] != '"':
            if text[j] == "\\":
                assert text[j + 1] in '"/\\bfnrtu', f"jsmn refuses \\{text[j + 1]}"
                j += 1
            j += 1
        return text[at + 1 : j], j + 1

    while text[i] != "}":
        key, i = string(i)
        assert text[i] == ":", text[i:]
        i += 1
        if text[i] == "{":
            end = text.index("}", i) + 1
            value, i = text[i:end], end
        else:
            value, i = string(i)
        members.append((key, value))
        if text[i] == ",":
            i += 1
    assert i == len(text) - 1, text[i:]
    return members


def rumprun_parseargs(text: str) -> list[str]:
    """rumprun's rumprun_parseargs: space, tab, newline delimit; `'`/`"` group; `\\` escapes."""
    words: list[str] = []
    current: list[str] | None = None
    quote = ""  # "" outside quotes inside a word
    i, n = 0, len(text)
    while i < n:
        ac = text[i]
        rc = ac
        i += 1
        if ac == "\\":
            if i >= n:
                break
            rc = text[i]
            i += 1
        if ac in " \n\t":
            if current is not None and not quote:
                words.append("".join(current))
                current = None
                continue
            if current is None:
                continue
        if current is None:
            current = []
            quote = ""
        if quote and ac == quote:
            quote = ""
            continue
        if ac in "'\"":
            quote = ac
            continue
        current.append(rc)
    if current is not None:
        words.append("".join(current))
    return words
