"""The shell reader: quoting, operators, expansions, errors."""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elyra_sidecar.transformer import _shell
from elyra_sidecar.transformer._elyra import main_script
from elyra_sidecar.transformer._shell import ShellSyntaxError, change_directory, parse_script
from tests.helpers import ELYRA_FIXTURES, compiled, load_fixture
from tests.support import work


class TestParseScript:
    def test_and_chain_splits_into_commands(self):
        """`&&` separates simple commands and is kept as their terminator."""
        cmds = parse_script("mkdir -p ./a && cd ./a && python3 x.py --f 'v'")
        assert [c.argv for c in cmds] == [
            ["mkdir", "-p", "./a"],
            ["cd", "./a"],
            ["python3", "x.py", "--f", "v"],
        ]
        assert [c.terminator for c in cmds] == ["&&", "&&", ""]

    def test_quotes_are_removed_per_posix(self):
        """Single quotes are literal; double quotes honour their four escapes."""
        (cmd,) = parse_script("""echo 'a "b" $c' "d \\"e\\" \\$f \\n" g\\ h""")
        assert cmd.argv == ["echo", 'a "b" $c', 'd "e" $f \\n', "g h"]
        assert not any(w.dynamic for w in cmd.words)

    def test_expansions_mark_words_dynamic(self):
        """`$x`, `${x}` and `$(...)` are kept raw and flagged; single-quoted `$` is not."""
        (cmd,) = parse_script("""echo "p=$lr" ${x} $(date) '$not' $0""")
        flags = [(w.value, w.dynamic, w.refs) for w in cmd.words[1:]]
        assert flags == [
            ("p=$lr", True, ("lr",)),
            ("${x}", True, ("x",)),
            ("$(date)", True, ("$(",)),
            ("$not", False, ()),
            ("$0", True, ("0",)),
        ]

    def test_newlines_separate_commands_and_assignments_are_recognised(self):
        """Elyra 3.14+ scripts: `x="$0"` lines then one `sh -c` per line."""
        cmds = parse_script('lr="$0"\nsh -c "echo a && cd b"\n')
        assert cmds[0].assignments[0].value == "lr=$0" and cmds[0].words == ()
        assert cmds[1].argv == ["sh", "-c", "echo a && cd b"]

    def test_redirections_are_not_arguments(self):
        """`> file` and `2>&1` go to redirects, not argv."""
        (cmd,) = parse_script("python3 -m pip freeze > requirements-current.txt 2>&1")
        assert cmd.argv == ["python3", "-m", "pip", "freeze"]
        assert [(op, w.value) for op, w in cmd.redirects] == [(">", "requirements-current.txt"), (">&", "1")]

    def test_comments_and_line_continuations(self):
        """`#` starts a comment at a word boundary; backslash-newline joins lines."""
        cmds = parse_script("echo a#b # tail\necho \\\n c")
        assert [c.argv for c in cmds] == [["echo", "a#b"], ["echo", "c"]]

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("echo 'open", "unterminated single quote"),
            ('echo "open', "unterminated double quote"),
            ("echo a &&", "ends after '&&'"),
            ("&& echo", "without a command"),
            ("(cd x)", "subshells"),
            ("echo `date`", "backquote"),
            ("cat <<EOF", "here-documents"),
        ],
    )
    def test_unreadable_scripts_raise_with_position(self, text, fragment):
        """What the reader does not understand is an error naming the offset, never a guess."""
        with pytest.raises(ShellSyntaxError, match=fragment) as info:
            parse_script(text)
        assert "at character" in str(info.value)


class TestChangeDirectory:
    @pytest.mark.parametrize(
        ("cwd", "target", "expected"),
        [
            (".", "./jupyter-work-dir/", "jupyter-work-dir"),
            (".", "/opt/app", "/opt/app"),
            ("a/b", "..", "a"),
            ("/x", "y/./z", "/x/y/z"),
        ],
    )
    def test_cd_resolves_like_the_shell(self, cwd, target, expected):
        """Relative targets join the current directory; absolute ones replace it."""
        assert change_directory(cwd, target) == expected

    @given(
        st.sampled_from([".", "/", "//", "..", "x/y", "/x", "//x", "../x"]),
        st.lists(st.sampled_from(["a", "..", ".", "", "...", "b.c"]), min_size=1, max_size=8).map("/".join),
    )
    def test_cd_is_posixpath_normpath_of_the_joined_path(self, cwd, target):
        """A chain of components gives the paths `posixpath.normpath(join(cwd, target))` gives."""
        assert change_directory(cwd, target) == posixpath.normpath(posixpath.join(cwd, target))


class TestOuterShell:
    def test_words_the_outer_shell_fills_in_are_dynamic_even_when_quoted(self):
        """`sh -c "... '$D' ..."`: the outer shell expands $D first, so the child's quoted word is dynamic."""
        (outer,) = parse_script("""sh -c "python3 b.py --d '$D' --n 'n'" """)
        script = outer.words[2]
        (child,) = parse_script(script.value, outer=script.spans)
        assert [(w.value, w.dynamic) for w in child.words] == [
            ("python3", False),
            ("b.py", False),
            ("--d", False),
            ("$D", True),
            ("--n", False),
            ("n", False),
        ]

    def test_escaped_dollar_stays_literal_in_the_child(self):
        """`sh -c "echo \\$D"`: the outer shell removes the backslash; the child expands $D itself."""
        (outer,) = parse_script("sh -c \"echo \\$D '\\$E'\"")
        script = outer.words[2]
        assert script.spans == ()
        (child,) = parse_script(script.value, outer=script.spans)
        assert [(w.value, w.dynamic) for w in child.words] == [("echo", False), ("$D", True), ("$E", False)]


# Pieces scripts are made of: Elyra's own commands, and every construct that can hide a separator (quotes,
# `$(...)`, escapes, continuations, operators, comments) or make one an error.
_PIECES = (
    "mkdir -p ./jupyter-work-dir",
    "cd ./jupyter-work-dir",
    'curl --fail -H "Cache-Control: no-cache" -L https://x/v3/bootstrapper.py -o bootstrapper.py',
    "echo 'Downloading https://x/bootstrapper.py'",
    "python3 -m pip freeze > requirements-current.txt",
    "python3 bootstrapper.py --cos-endpoint http://s3:9000 --cos-bucket b --file 'w/x.py' --outputs 'a;b'",
    "sh -c \"python3 bootstrapper.py --file 'x.py' --pipeline-parameters 'lr=$lr' \"",
    'lr="$0"',
    " && ",
    "&&",
    " || ",
    " | ",
    " ; ",
    " & ",
    "\n",
    "\\\n",
    " \\",
    '"',
    "'",
    '"a && b"',
    "'a && b'",
    '"a\nb"',
    "$(a && b)",
    "${x}",
    " # note && more\n",
    " # note && more",
    " > out",
    " 2>",
    "(",
    "&&&",
    "\t",
    "x",
)


class TestDividedReading:
    """`parse_script` reads a long script's head from memory and its last command anew (issue 14): it must
    give exactly what reading the whole text at once gives, commands or error."""

    @staticmethod
    def _whole(text: str, outer: tuple[tuple[int, int], ...]) -> object:
        try:
            return [(c.assignments, c.words, c.redirects, c.terminator) for c in _shell._parse(text, outer)]
        except ShellSyntaxError as exc:
            return ("error", str(exc))

    @staticmethod
    def _divided(text: str, outer: tuple[tuple[int, int], ...]) -> object:
        try:
            return [
                (c.assignments, c.words, c.redirects, c.terminator) for c in parse_script(text, outer=outer)
            ]
        except ShellSyntaxError as exc:
            return ("error", str(exc))

    @settings(max_examples=3000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(
        pieces=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=24),
        spans=st.lists(st.tuples(st.integers(0, 600), st.integers(1, 40)), max_size=3),
    )
    def test_same_as_reading_the_whole_text(self, pieces, spans):
        """Random scripts of Elyra's commands and every separator-hiding construct, with and without outer
        spans, read twice (memory cleared, then warm): commands and errors equal the whole reading."""
        text = "".join(pieces)
        if len(text) < _shell._DIVIDE_FROM:  # long enough to be divided; the pieces' own end left as it is
            text = "echo " + "p" * _shell._DIVIDE_FROM + "\n" + text
        outer = tuple(sorted((a, a + n) for a, n in spans))
        _shell._remembered.cache_clear()
        expected = self._whole(text, outer)
        assert self._divided(text, outer) == expected
        assert self._divided(text, outer) == expected  # the head remembered

    def test_elyra_scripts_are_divided(self):
        """The real fixtures' node scripts take the divided path (else this saves nothing), with the same
        commands as the whole reading."""
        divided = 0
        for path in ELYRA_FIXTURES:
            for template in load_fixture(path)["spec"]["templates"]:
                script = main_script(template)
                if script is None:
                    continue
                divided += _shell._parse_divided(script, ()) is not None
                assert self._divided(script, ()) == self._whole(script, ())
        assert divided >= 20


class TestOuterSpans:
    def test_empty_quotes_in_a_script_the_outer_shell_fills_in(self):
        """`""` in a `sh -c` script whose outer word has an expansion reads as an empty word (it crashed the
        reader with a TypeError before: found by the divided-reading property test)."""
        (cmd,) = parse_script('echo "" x', outer=((5, 7),))  # the outer shell fills in what sits at `""`
        assert cmd.argv == ["echo", "", "x"]
        assert [w.dynamic for w in cmd.words] == [False, True, False]


class TestDividedReadingEdges:
    """What an adversarial review found in the divided reading (issue 14), each checked against the whole
    reading, and the bound on its work for a hostile script."""

    LONG = "echo " + "x" * 300

    @pytest.mark.parametrize(
        ("end", "refused"),
        [
            (" && \n", True),
            (" && ", True),
            (" &&\t\n\n", True),
            (" && >out", True),
            (" && 2>&1", True),
            (" && >out\n", False),  # a redirection alone is a command once a newline ends it
        ],
    )
    def test_a_script_ending_after_and_reads_as_when_read_whole(self, end, refused):
        """`a && ` at the end (nothing, blanks or only a redirection after it) is refused, as the whole
        reading refuses it, at the same place (the divided reading once returned `a` alone)."""
        text = self.LONG + end
        assert TestDividedReading._divided(text, ()) == TestDividedReading._whole(text, ())
        assert (TestDividedReading._whole(text, ())[0] == "error") is refused

    def test_outer_spans_given_as_a_list(self):
        """`outer` as any sequence: an empty list once raised TypeError (unhashable) on a long script."""
        text = self.LONG + " && echo $x"
        assert parse_script(text, outer=[]) == parse_script(text)
        assert parse_script(text, outer=[(len(text) - 2, len(text))])[-1].words[-1].dynamic

    def test_commands_are_immutable(self):
        """A remembered head's commands are shared by every reading: nobody can change them."""
        text = self.LONG + " && echo y"
        first = parse_script(text)[0]
        with pytest.raises(AttributeError):
            first.words = ()  # type: ignore[misc]
        assert isinstance(first.words, tuple)

    @pytest.mark.parametrize(
        "hostile",
        [
            "echo '" + "a && b\n" * 20_000 + "'",  # separators inside one quoted string (160 kB)
            "x\n" * 3_000 + '"',  # an unterminated quote at the end
            "echo '" + "a && b\n" * 1_000 + "'",  # the same, short enough to be divided (8 kB)
            "&" * 5_000 + " x",
            "echo " + "&& " * 2_700 + "x",
        ],
    )
    @pytest.mark.skipif(
        compiled(_shell), reason="counts calls by replacing module functions: the pure-Python run checks it"
    )
    def test_the_work_is_bounded(self, monkeypatch, hostile):
        """Whatever the script, the divided reading looks at no more than a few separators and reads no
        more than three times the text (the review once found 160 kB taking seconds: quadratic)."""
        looked, read = [], []
        separators, parse = _shell._separators_from_the_end, _shell._parse

        def counting_separators(text):
            for found in separators(text):
                looked.append(found)
                yield found

        def counting_parse(text, outer):
            read.append(len(text))
            return parse(text, outer)

        monkeypatch.setattr(_shell, "_separators_from_the_end", counting_separators)
        monkeypatch.setattr(_shell, "_parse", counting_parse)
        _shell._remembered.cache_clear()
        with contextlib.suppress(ShellSyntaxError):
            parse_script(hostile)
        assert len(looked) <= _shell._DIVIDE_CANDIDATES
        assert sum(read) <= 3 * len(hostile)


def _reading(text: str, outer: tuple[tuple[int, int], ...] = ()) -> Callable[[], object]:
    def run() -> object:
        _shell._remembered.cache_clear()
        with contextlib.suppress(ShellSyntaxError):
            return parse_script(text, outer=outer)
        return None

    return run


def _child_of(outer_script: str) -> Callable[[], object]:
    """The reading of the `sh -c` word of `outer_script` with the spans its outer shell fills in."""
    (command,) = parse_script(outer_script)
    word = command.words[2]
    return _reading(word.value, word.spans)


#: Hostile shapes by their size n (each about 2n-4n characters).
_HOSTILE_SHAPES: dict[str, Callable[[int], Callable[[], object]]] = {
    "many $ in one word": lambda n: _reading("echo a" + "$x" * n),
    "many $ in one double-quoted word": lambda n: _reading('echo "' + "$x" * n + '"'),
    "many ${x} in one word": lambda n: _reading("echo " + "${x}" * n),
    "many $(...) in one word": lambda n: _reading("echo " + "$(d)" * n),
    "many escaped $ in double quotes": lambda n: _reading('echo "' + "\\$" * n + '"'),
    "many quotes in one word": lambda n: _reading("echo " + "'a'\"b\"" * n),
    "one long word": lambda n: _reading("echo " + "a" * (4 * n)),
    "one long word ending in an escape": lambda n: _reading("echo " + "a=" * (2 * n) + "\\ "),
    "one long ${...}": lambda n: _reading("echo ${" + "a" * (4 * n) + "}"),
    "deep $( nesting": lambda n: _reading("echo $(" + "(" * n + ")" * n + ")"),
    "many words": lambda n: _reading("echo " + "a " * n),
    "many commands": lambda n: _reading("a && " * n + "b"),
    "many assignments": lambda n: _reading("x=1 " * n + "b"),
    "an unterminated quote after many words": lambda n: _reading("echo " + "a " * n + '"'),
    "a child script with many filled-in parts": lambda n: _child_of(
        'sh -c "python3 bootstrapper.py ' + "x $a " * n + '"'
    ),
    "a child script with many filled-in quoted words": lambda n: _child_of(
        'sh -c "echo ' + "'$a' 'x' " * n + '"'
    ),
}


class TestLinearReading:
    @pytest.mark.parametrize("shape", list(_HOSTILE_SHAPES))
    def test_the_work_grows_linearly_with_the_script(self, shape):
        """8 times the script costs at most ~8 times the work, whatever its shape. A Pod review of 58 kB
        once took 5 s and one of 0.5 MB 554 s: each `$` of a word re-measured the word read so far."""
        grown = work.growth(_HOSTILE_SHAPES[shape], 2_000)
        assert grown.is_linear(), grown
