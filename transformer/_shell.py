"""A small POSIX shell reader: enough of `sh` to read the command lines Elyra generates.

It tokenizes with the real quoting rules (single quotes, double quotes with their four escapes,
backslashes, comments, line continuations) and splits the text into simple commands joined by
operators (`&&`, `||`, `;`, `|`, `&`, newline). It never executes or expands anything: a word that
contains an expansion (`$x`, `${x}`, `$(...)`, backticks) is marked `dynamic` and keeps its raw
text, so callers can tell a literal value from one that is only known at run time.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

__all__ = ["Command", "ShellSyntaxError", "Word", "parse_script"]

_OPERATORS = ("&&", "||", ";;", ";", "|", "&", "(", ")")
_REDIRECTS = (">>", ">&", "<&", "<<", ">|", "<>", ">", "<")
_DOUBLE_QUOTE_ESCAPES = frozenset('$`"\\\n')
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_SPECIAL_PARAMS = frozenset("0123456789@*#?$!-")
# Characters that can start an operator or redirection; anything else cannot end a word.
_OPERATOR_START = frozenset("&|;()<>")
# A run of characters with no special meaning in an unquoted word (tokenizing, not parsing).
_PLAIN_RUN = re.compile(r"[^\s'\"\\$`&|;()<>]+")
_DQ_PLAIN_RUN = re.compile(r'[^"\\$`]+')
_BLANKS = re.compile(r"[ \t]+")
# A whole word with nothing special in it, ending at a blank, newline, operator or the end.
_PLAIN_WORD = re.compile(r"[^\s'\"\\$`&|;()<>#=][^\s'\"\\$`&|;()<>=]*(?=[\s&|;()<>]|\Z)")


class ShellSyntaxError(ValueError):
    """The text is not a shell script this reader understands; `offset` is where it failed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at character {offset}")
        self.offset = offset


@dataclass(frozen=True)
class Word:
    """One shell word after quote removal. `dynamic` words contain an expansion left unexpanded."""

    value: str
    dynamic: bool = False
    refs: tuple[str, ...] = ()


@dataclass
class Command:
    """A simple command: leading assignments, words, redirections, and the operator that ended it."""

    assignments: list[Word] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    redirects: list[tuple[str, Word]] = field(default_factory=list)
    terminator: str = ""

    @property
    def argv(self) -> list[str]:
        return [w.value for w in self.words]


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)


def _read_expansion(r: _Reader, out: list[str], refs: list[str]) -> None:
    """Read an expansion starting at `$`; append its raw text to `out`, its name to `refs`."""
    start = r.pos
    r.pos += 1  # the `$`
    nxt = r.peek()
    if nxt == "{":
        end = r.text.find("}", r.pos)
        if end < 0:
            raise ShellSyntaxError("unterminated ${", start)
        inner = r.text[r.pos + 1 : end]
        name = ""
        for ch in inner:
            if ch not in _NAME_CHARS:
                break
            name += ch
        refs.append(name or inner[:1])
        r.pos = end + 1
    elif nxt == "(":
        depth = 0
        while not r.at_end():
            ch = r.text[r.pos]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    r.pos += 1
                    break
            r.pos += 1
        else:
            raise ShellSyntaxError("unterminated $(", start)
        refs.append("$(")
    elif nxt and nxt in _NAME_START:
        name_start = r.pos
        while not r.at_end() and r.text[r.pos] in _NAME_CHARS:
            r.pos += 1
        refs.append(r.text[name_start : r.pos])
    elif nxt and nxt in _SPECIAL_PARAMS:
        r.pos += 1
        refs.append(nxt)
    else:
        # A lone `$` is a literal dollar sign.
        out.append("$")
        return
    out.append(r.text[start : r.pos])


def _read_word(r: _Reader) -> Word:
    out: list[str] = []
    refs: list[str] = []
    text = r.text
    while r.pos < len(text):
        plain = _PLAIN_RUN.match(text, r.pos)
        if plain:
            out.append(plain.group())
            r.pos = plain.end()
            continue
        ch = text[r.pos]
        if ch in " \t\n" or ch in _OPERATOR_START:
            break
        if ch == "'":
            end = r.text.find("'", r.pos + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated single quote", r.pos)
            out.append(r.text[r.pos + 1 : end])
            r.pos = end + 1
        elif ch == '"':
            start = r.pos
            r.pos += 1
            while True:
                if r.at_end():
                    raise ShellSyntaxError("unterminated double quote", start)
                run = _DQ_PLAIN_RUN.match(text, r.pos)
                if run:
                    out.append(run.group())
                    r.pos = run.end()
                    continue
                c = r.text[r.pos]
                if c == '"':
                    r.pos += 1
                    break
                if c == "\\" and r.peek(2)[1:] in _DOUBLE_QUOTE_ESCAPES and len(r.peek(2)) == 2:
                    escaped = r.text[r.pos + 1]
                    if escaped != "\n":
                        out.append(escaped)
                    r.pos += 2
                elif c == "$":
                    _read_expansion(r, out, refs)
                elif c == "`":
                    raise ShellSyntaxError("backquote command substitution is not supported", r.pos)
                else:
                    out.append(c)
                    r.pos += 1
        elif ch == "\\":
            if r.pos + 1 >= len(r.text):
                raise ShellSyntaxError("trailing backslash", r.pos)
            escaped = r.text[r.pos + 1]
            if escaped != "\n":
                out.append(escaped)
            r.pos += 2
        elif ch == "$":
            _read_expansion(r, out, refs)
        elif ch == "`":
            raise ShellSyntaxError("backquote command substitution is not supported", r.pos)
        else:
            out.append(ch)
            r.pos += 1
    return Word("".join(out), dynamic=bool(refs), refs=tuple(refs))


def _is_assignment(raw: str) -> bool:
    name, sep, _ = raw.partition("=")
    return bool(sep) and bool(name) and name[0] in _NAME_START and all(c in _NAME_CHARS for c in name)


def parse_script(text: str) -> list[Command]:
    """Split `text` into simple commands. Raises ShellSyntaxError on what it cannot read."""
    r = _Reader(text)
    commands: list[Command] = []
    current = Command()

    def finish(terminator: str) -> None:
        nonlocal current
        if current.words or current.assignments or current.redirects:
            current.terminator = terminator
            commands.append(current)
        elif terminator in ("&&", "||", "|"):
            raise ShellSyntaxError(f"operator {terminator!r} without a command before it", r.pos)
        current = Command()

    text_len = len(text)
    while r.pos < text_len:
        blanks = _BLANKS.match(text, r.pos)
        if blanks:
            r.pos = blanks.end()
            continue
        plain = _PLAIN_WORD.match(text, r.pos)
        if plain:  # fast path: the common unquoted word (never an assignment: it has no `=`)
            current.words.append(Word(plain.group()))
            r.pos = plain.end()
            continue
        ch = text[r.pos]
        if ch == "\\" and r.peek(2) == "\\\n":
            r.pos += 2
            continue
        if ch == "#":  # at a word boundary: a comment to the end of the line
            end = r.text.find("\n", r.pos)
            r.pos = len(r.text) if end < 0 else end
            continue
        if ch == "\n":
            r.pos += 1
            if current.words or current.assignments or current.redirects:
                finish("\n")
            continue
        op = (
            next((op for op in _OPERATORS if r.text.startswith(op, r.pos)), None)
            if ch in _OPERATOR_START
            else None
        )
        if op is not None:
            if op in ("(", ")", ";;"):
                raise ShellSyntaxError(f"{op!r} (subshells and case) is not supported", r.pos)
            r.pos += len(op)
            finish(op)
            continue
        redirect = (
            next((rd for rd in _REDIRECTS if r.text.startswith(rd, r.pos)), None) if ch in "<>" else None
        )
        if redirect is not None:
            if redirect == "<<":
                raise ShellSyntaxError("here-documents are not supported", r.pos)
            r.pos += len(redirect)
            while r.peek() in (" ", "\t"):
                r.pos += 1
            target = _read_word(r)
            if not target.value and not target.dynamic:
                raise ShellSyntaxError(f"redirection {redirect!r} without a target", r.pos)
            # `2>`: a file-descriptor number written right before the operator belongs to it.
            if current.words and current.words[-1].value.isdigit() and not current.words[-1].dynamic:
                current.words.pop()
            current.redirects.append((redirect, target))
            continue
        start = r.pos
        word = _read_word(r)
        raw = r.text[start : r.pos]
        if not current.words and _is_assignment(raw):
            current.assignments.append(word)
        else:
            current.words.append(word)
    if (
        commands
        and commands[-1].terminator in ("&&", "||", "|")
        and not (current.words or current.assignments)
    ):
        raise ShellSyntaxError(f"script ends after {commands[-1].terminator!r}", len(text))
    finish("")
    return commands


def change_directory(cwd: str, target: str) -> str:
    """The directory after `cd target` from `cwd` (POSIX paths; `cwd` may be relative to an unknown base)."""
    return posixpath.normpath(posixpath.join(cwd, target))
