"""A small POSIX shell reader: enough of `sh` to read the command lines Elyra generates.

It tokenizes with the real quoting rules (single quotes, double quotes with their four escapes,
backslashes, comments, line continuations) and splits the text into simple commands joined by
operators (`&&`, `||`, `;`, `|`, `&`, newline). It never executes or expands anything: a word that
contains an expansion (`$x`, `${x}`, `$(...)`, backticks) is marked `dynamic` and keeps its raw
text, so callers can tell a literal value from one that is only known at run time.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["START", "Command", "Directory", "ShellSyntaxError", "Word", "parse_script"]

_DOUBLE_QUOTE_ESCAPES = frozenset('$`"\\\n')
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_SPECIAL_PARAMS = frozenset("0123456789@*#?$!-")
# Characters that can start an operator or redirection; anything else cannot end a word.
_OPERATOR_START = frozenset("&|;()<>")
# A run of characters with no special meaning in an unquoted word (tokenizing, not parsing).
_PLAIN_RUN = re.compile(r"[^\s'\"\\$`&|;()<>]+")
_DQ_PLAIN_RUN = re.compile(r'[^"\\$`]+')
_NAME_RUN = re.compile(r"[A-Za-z0-9_]*")
# Where a word ends: a blank, a newline, an operator or redirection, or the end of the text.
_WORD_END = r"(?=[ \t\n&|;()<>]|\Z)"
# Words with nothing to remove but their quotes: unquoted with no special character (and no `=`, so never
# an assignment), single-quoted, or double-quoted with nothing to expand or escape.
_PLAIN = r"[^\s'\"\\$`&|;()<>#=][^\s'\"\\$`&|;()<>=]*"
_SIMPLE_WORD = rf"(?:{_PLAIN}|'[^']*'|\"[^\"\\$`]*\")"
# One token at a word boundary (after optional blanks), tried in this order. This reader runs on every
# node of every admission review, so the common case costs one match for a whole run of simple words
# (`python3 bootstrapper.py --file 'x.py' ...`), split by `_RUN_WORDS` in one call. Other words (with
# escapes, expansions or mixed quoting) are read by `_read_word`.
_TOKEN = re.compile(
    r"(?:[ \t]|\\\n)*(?:"  # blanks and line continuations before the token
    rf"(?P<run>{_SIMPLE_WORD}(?:[ \t]+{_SIMPLE_WORD})*){_WORD_END}"
    # one unquoted word before a character the shell takes as a blank but this reader does not (`\r`)
    rf"|(?P<plain>{_PLAIN})(?=[\s&|;()<>]|\Z)"
    r"|(?P<comment>#[^\n]*)"  # at a word boundary: a comment to the end of the line
    r"|(?P<newline>\n)"
    r"|(?P<op>&&|\|\||;;|[;|&()])"
    r"|(?P<redirect>>>|>&|<&|<<|>\||<>|[<>])"
    r"|(?P<end>\Z))"
    r"|(?P<blank>(?:[ \t]|\\\n)+)"  # blanks before a word `_read_word` reads
)
_RUN_WORDS = re.compile(r"'([^']*)'|\"([^\"]*)\"|([^ \t]+)")


class ShellSyntaxError(ValueError):
    """The text is not a shell script this reader understands; `offset` is where it failed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at character {offset}")
        self.offset = offset


class Word(NamedTuple):
    """One shell word after quote removal. `dynamic` words contain an expansion left unexpanded; `spans`
    are where in `value` those expansions sit (raw), so a script run by `sh -c <word>` can tell which of
    its own words the outer shell fills in at run time."""

    value: str
    dynamic: bool = False
    refs: tuple[str, ...] = ()
    spans: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Command:
    """A simple command: leading assignments, words, redirections, and the operator that ended it.

    Immutable: the commands of a script's head are remembered and shared by every reading of it."""

    assignments: tuple[Word, ...] = ()
    words: tuple[Word, ...] = ()
    redirects: tuple[tuple[str, Word], ...] = ()
    terminator: str = ""

    @property
    def argv(self) -> list[str]:
        return [w.value for w in self.words]


@dataclass(slots=True)
class _Building:
    """The command the reader is in the middle of."""

    assignments: list[Word] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    redirects: list[tuple[str, Word]] = field(default_factory=list)


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)


def _read_expansion(r: _Reader, out: list[str], refs: list[str], marks: list[int]) -> None:
    """Read an expansion starting at `$`; append its raw text to `out`, its name to `refs`, and the index
    in `out` of that raw text to `marks` (`_read_word` turns them into `spans` in one pass at the end:
    counting the word's length at each `$` made a word of many expansions cost their number squared)."""
    start = r.pos
    r.pos += 1  # the `$`
    nxt = r.peek()
    if nxt == "{":
        end = r.text.find("}", r.pos)
        if end < 0:
            raise ShellSyntaxError("unterminated ${", start)
        name_match = _NAME_RUN.match(r.text, r.pos + 1, end)
        name = name_match.group() if name_match else ""
        refs.append(name or r.text[r.pos + 1 : min(r.pos + 2, end)])
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
    marks.append(len(out))
    out.append(r.text[start : r.pos])


def _spans_of(out: list[str], marks: list[int]) -> tuple[tuple[int, int], ...]:
    """Where the pieces `out[i]` for i in `marks` (ascending) sit in `"".join(out)`: one pass."""
    spans: list[tuple[int, int]] = []
    offset = 0
    following = iter(marks)
    mark = next(following, -1)
    for index, piece in enumerate(out):
        if index == mark:
            spans.append((offset, offset + len(piece)))
            mark = next(following, -1)
        offset += len(piece)
    return tuple(spans)


def _read_word(r: _Reader) -> Word:  # noqa: C901, PLR0912, PLR0915 - the tokenizer: one loop over characters, a branch per quoting construct
    out: list[str] = []
    refs: list[str] = []
    marks: list[int] = []
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
                    _read_expansion(r, out, refs, marks)
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
            _read_expansion(r, out, refs, marks)
        elif ch == "`":
            raise ShellSyntaxError("backquote command substitution is not supported", r.pos)
        else:
            out.append(ch)
            r.pos += 1
    spans = _spans_of(out, marks) if marks else ()
    return Word("".join(out), dynamic=bool(refs), refs=tuple(refs), spans=spans)


def _literal(value: str) -> Word:
    """`Word(value)`, built in C: the NamedTuple's own constructor is Python code, and scripts have many."""
    return _new_tuple(Word, (value, False, (), ()))


_new_tuple = tuple.__new__


def _is_assignment(raw: str) -> bool:
    name, sep, _ = raw.partition("=")
    return bool(sep) and bool(name) and name[0] in _NAME_START and all(c in _NAME_CHARS for c in name)


class _Filled:
    """The parts of a script the outer shell fills in (its `outer` spans), sorted and merged, so whether a
    word touches one is one binary search (a look at every span for every word cost words x spans)."""

    __slots__ = ("ends", "starts")

    def __init__(self, spans: tuple[tuple[int, int], ...]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for a, b in sorted(spans):
            if self.ends and a <= self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], b)
            else:
                self.starts.append(a)
                self.ends.append(b)

    def touches(self, start: int, end: int) -> bool:
        """Whether text[start:end] overlaps a filled-in part."""
        first = bisect.bisect_right(self.ends, start)  # the first part ending after `start`
        return first < len(self.starts) and self.starts[first] < end


def _marked(word: Word, start: int, end: int, outer: _Filled) -> Word:
    """`word` (read from text[start:end]) marked dynamic when the outer shell fills part of it in."""
    if word.dynamic or not outer.touches(start, end):
        return word
    return Word(word.value, dynamic=True, refs=(*word.refs, "(outer shell)"), spans=((0, len(word.value)),))


_Spans = tuple[tuple[int, int], ...]

#: Scripts shorter than this are read whole (and remembered), and so are scripts longer than
#: `_DIVIDE_UP_TO`: their head would not be remembered, and a hostile one cannot make the search below
#: cost more than a few readings of a few kB.
_DIVIDE_FROM = 256
_DIVIDE_UP_TO = 8192
#: Separators looked at, from the last one back, before the script is read whole; and of those, how many
#: may be tried (read on both sides) without success.
_DIVIDE_CANDIDATES = 8
_DIVIDE_TRIES = 2


def parse_script(text: str, *, outer: Sequence[tuple[int, int]] = ()) -> list[Command]:
    """Split `text` into simple commands. Raises ShellSyntaxError on what it cannot read.

    `outer`: for a script run as `sh -c <word>`, the `spans` of that word: its text there is only known at
    run time (the outer shell expands it first), so words of `text` touching it are dynamic, quoted or not.
    """
    spans = tuple(outer)  # any sequence (the compiled build checks the declared type at the call)
    if len(text) < _DIVIDE_FROM:  # a short script, such as `sh -c` lines of Elyra 3.14+: often repeated
        return list(_remembered(text, spans))
    if len(text) <= _DIVIDE_UP_TO and "#" not in text:  # a comment runs on past a part
        divided = _parse_divided(text, spans)
        if divided is not None:
            return divided
    return _parse(text, spans)


def _parse_divided(text: str, outer: _Spans) -> list[Command] | None:
    """`_parse(text)` as its head (remembered) and its last command (read anew); None when no separator
    near the end divides it (the caller reads the whole text at once, which also names any error).

    Elyra's scripts differ from node to node (and from pipeline to pipeline of one Elyra version) in their
    last command, the bootstrapper call; what comes before it (`mkdir`, `cd`, the `curl`s, `pip`) is the
    same. So the head is read once, and a new pipeline costs about the reading of its bootstrapper calls.

    Why the result is the same as reading the whole text: the reader enters each side at the top level with
    no command begun (the head was read to its end without error, so no quote, `$(...)` or continuation is
    open there, and the separator ended its last command), and reads it with the same steps as the whole
    text (its lookaheads accept the end of the head where the whole text has a blank or a newline).
    A separator inside quotes, `$(...)`, after a backslash or after an operator leaves a side unreadable on
    its own (unterminated, trailing backslash, ends after `&&`), and the next one back is tried. The checks
    the whole reading makes across the separator (an `&&` with no command before or after it) are made
    here by handing such a script to the whole reading."""
    tries = 0
    for start, end in itertools.islice(_separators_from_the_end(text), _DIVIDE_CANDIDATES):
        tail = text[end:]
        if not tail.strip(" \t"):
            continue  # nothing after it: a trailing newline
        if tail.count('"') % 2 or tail.count("'") % 2:
            continue  # most likely inside quotes (only a guess: both sides must read on their own)
        tries += 1
        if tries > _DIVIDE_TRIES:
            return None
        try:
            head = _remembered(text[:start], _clip(outer, 0, start))
            last = _parse(tail, _clip(outer, end, len(text)))
        except ShellSyntaxError:
            continue
        separator = text[start:end]
        # The whole reading's checks across an `&&`: a command before it, and one with a word after it
        # (`a && ` or `a && >f` at the end is an error there, named at its place).
        if separator == "&&" and (not head or head[-1].terminator or _ends_after_and(last)):
            return None
        if not head or head[-1].terminator:  # a newline after `;` or `&`: it ends no command
            return [*head, *last]
        final = head[-1]
        return [*head[:-1], Command(final.assignments, final.words, final.redirects, separator), *last]
    return None


def _ends_after_and(last: list[Command]) -> bool:
    """Whether a script whose last command follows an `&&` ends right after it, as the whole reading sees
    it: `last` (that command's reading) finished no command and has no word or assignment."""
    if not last:
        return True
    only = last[0]
    return len(last) == 1 and not only.terminator and not (only.words or only.assignments)


def _separators_from_the_end(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each newline and each `&&` between blanks in `text`, the last one first."""
    limit = len(text)
    newline = text.rfind("\n", 0, limit)
    both = text.rfind("&&", 0, limit)
    while newline >= 0 or both >= 0:
        if newline > both:
            yield newline, newline + 1
            limit = newline
            newline = text.rfind("\n", 0, limit)
        else:
            if both > 0 and both + 2 < len(text) and text[both - 1] in " \t" and text[both + 2] in " \t":
                yield both, both + 2
            limit = both + 1  # `&&&`: its first two may be the separator
        both = text.rfind("&&", 0, limit)


def _clip(spans: _Spans, start: int, end: int) -> _Spans:
    """The parts of `spans` within text[start:end], counted from `start`."""
    if not spans:
        return spans
    return tuple((max(a, start) - start, min(b, end) - start) for a, b in spans if a < end and start < b)


@functools.lru_cache(maxsize=256)
def _remembered(text: str, outer: _Spans) -> tuple[Command, ...]:
    """The readings of at most 256 heads and short scripts (at most `_DIVIDE_UP_TO` characters), by text
    (errors are not remembered)."""
    return tuple(_parse(text, outer))


def _parse(text: str, spans: _Spans) -> list[Command]:  # noqa: C901, PLR0912, PLR0915 - the grammar: one loop over tokens, a branch per operator
    """The reader itself: `text` from its start to its end, at once."""
    r = _Reader(text)
    outer = _Filled(spans) if spans else None
    commands: list[Command] = []
    current = _Building()

    def finish(terminator: str) -> None:
        nonlocal current
        if current.words or current.assignments or current.redirects:
            done = Command(
                tuple(current.assignments), tuple(current.words), tuple(current.redirects), terminator
            )
            commands.append(done)
        elif terminator in ("&&", "||", "|"):
            raise ShellSyntaxError(f"operator {terminator!r} without a command before it", r.pos)
        current = _Building()

    text_len = len(text)
    while r.pos < text_len:
        token = _TOKEN.match(text, r.pos)
        kind = token.lastgroup if token else None
        if token is None or kind is None:
            pass  # a word only `_read_word` reads, at r.pos
        elif kind == "run":
            start, r.pos = token.span(kind)
            if outer is not None and outer.touches(start, r.pos):  # some are filled in at run time
                current.words += [
                    _marked(_literal(m.group(1) or m.group(2) or m.group(3) or ""), m.start(), m.end(), outer)
                    for m in _RUN_WORDS.finditer(text, start, r.pos)
                ]
            else:
                current.words += [_literal(q or d or p) for q, d, p in _RUN_WORDS.findall(token.group(kind))]
            continue
        elif kind in ("blank", "end", "comment"):
            r.pos = token.end()
            continue
        elif kind == "plain":
            start, r.pos = token.span(kind)
            word = _literal(token.group(kind))
            current.words.append(_marked(word, start, r.pos, outer) if outer is not None else word)
            continue
        elif kind == "newline":
            r.pos = token.end()
            finish("\n")
            continue
        elif kind == "op":
            op = token.group(kind)
            if op in ("(", ")", ";;"):
                raise ShellSyntaxError(f"{op!r} (subshells and case) is not supported", token.start(kind))
            r.pos = token.end()
            finish(op)
            continue
        else:  # a redirection
            redirect = token.group(kind)
            r.pos = token.start(kind)
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
        if outer is not None:
            word = _marked(word, start, r.pos, outer)
        if not current.words and _is_assignment(text[start : r.pos]):
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


@dataclass(frozen=True, slots=True)
class Directory:
    """A working directory as `cd` leaves it: a chain of components from its `root` ("" for `.`, relative
    to an unknown base; "/", or "//", which POSIX leaves to the system). Immutable, so a child shell shares
    its parent's; each `cd` costs its target's length, not the path's (joining and normalizing the whole
    path at every `cd` was quadratic in their number). Paths come out as `posixpath.normpath` writes them."""

    parent: Directory | None = None  # None: the root
    name: str = ""
    root: str = ""

    def cd(self, target: str) -> Directory:
        """The directory after `cd target` (`..` of `/` is `/`, `..` of `.` is `..`)."""
        here = self
        if target.startswith("/"):
            here = _ROOTS[target.startswith("//") and not target.startswith("///")]
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if part != "..":
                here = Directory(here, part, here.root)
            elif here.parent is not None and here.name != "..":
                here = here.parent
            elif not here.root:
                here = Directory(here, "..", "")
        return here

    @property
    def path(self) -> str:
        parts: list[str] = []
        here: Directory | None = self
        while here is not None and here.parent is not None:
            parts.append(here.name)
            here = here.parent
        return self.root + "/".join(reversed(parts)) or "."


_ROOTS = (Directory(root="/"), Directory(root="//"))
#: The directory a script starts in.
START = Directory()


def change_directory(cwd: str, target: str) -> str:
    """The directory after `cd target` from `cwd` (POSIX paths; `cwd` may be relative to an unknown base)."""
    return START.cd(cwd).cd(target).path
