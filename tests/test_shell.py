"""The shell reader: quoting, operators, expansions, errors."""

from __future__ import annotations

import pytest

from elyra_sidecar.transformer._shell import ShellSyntaxError, change_directory, parse_script


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
        assert cmds[0].assignments[0].value == "lr=$0" and cmds[0].words == []
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
