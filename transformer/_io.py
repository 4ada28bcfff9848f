"""Reading and writing Workflows: plain YAML, or a KFP package (.tar.gz/.tgz/.zip holding pipeline.yaml)."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import yaml

__all__ = ["InputError", "Loaded", "dump_yaml", "load_input", "render_output", "write_output"]

Format = Literal["yaml", "tar", "zip"]
PIPELINE_MEMBER = "pipeline.yaml"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class InputError(ValueError):
    """The input or output cannot be used; the message says what and where."""


class _Dumper(_BaseDumper):  # type: ignore[misc]
    """Block style everywhere, multi-line strings as `|` literals so diffs stay readable, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - PyYAML's signature
        return True


def _represent_str(dumper: Any, value: str) -> Any:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    return str(
        yaml.dump(
            data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
        )
    )


@dataclass(frozen=True)
class Loaded:
    """A parsed input: the Workflow, the raw bytes, and what to write it back as."""

    workflow: Any
    raw: bytes
    fmt: Format
    name: str


def _format_of(name: str, raw: bytes) -> Format:
    if raw[:2] == b"\x1f\x8b" or name.endswith((".tar.gz", ".tgz")):
        return "tar"
    if raw[:4] == b"PK\x03\x04" or name.endswith(".zip"):
        return "zip"
    return "yaml"


def _parse_yaml(text: bytes, where: str) -> Any:
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not UTF-8 text (byte {exc.start})") from exc
    try:
        documents = [d for d in yaml.load_all(decoded, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{where}: not valid YAML{at}: {problem}") from exc
    if not documents:
        raise InputError(f"{where}: empty, expected a Workflow")
    if len(documents) > 1:
        first = documents[0]
        if isinstance(first, dict) and ("pipelineInfo" in first or "deploymentSpec" in first):
            return first  # KFP v2 IR with its platform spec: transform() explains it
        raise InputError(f"{where}: holds {len(documents)} YAML documents; expected one Workflow")
    return documents[0]


def _read_archive_member(raw: bytes, fmt: Format, where: str) -> bytes:
    try:
        if fmt == "tar":
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
                try:
                    member = tar.getmember(PIPELINE_MEMBER)
                except KeyError:
                    raise InputError(f"{where}: KFP package without {PIPELINE_MEMBER}") from None
                handle = tar.extractfile(member)
                if handle is None:
                    raise InputError(f"{where}: {PIPELINE_MEMBER} in the package is not a file")
                return handle.read()
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            try:
                return zf.read(PIPELINE_MEMBER)
            except KeyError:
                raise InputError(f"{where}: KFP package without {PIPELINE_MEMBER}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise InputError(f"{where}: damaged {fmt} archive ({exc})") from exc


def load_input(source: str, stdin: BinaryIO | None = None) -> Loaded:
    """Read `source` (a path, or `-` for standard input) and parse the Workflow in it."""
    if source == "-":
        if stdin is None:
            raise InputError("-: no standard input")
        raw = stdin.read()
        name = "<stdin>"
    else:
        try:
            raw = Path(source).read_bytes()
        except IsADirectoryError:
            raise InputError(f"{source}: is a directory, expected a Workflow file") from None
        except OSError as exc:
            raise InputError(f"{source}: cannot read: {exc.strerror}") from exc
        name = source
    fmt = _format_of(name, raw)
    text = raw if fmt == "yaml" else _read_archive_member(raw, fmt, name)
    where = name if fmt == "yaml" else f"{name}:{PIPELINE_MEMBER}"
    return Loaded(workflow=_parse_yaml(text, where), raw=raw, fmt=fmt, name=name)


def render_output(loaded: Loaded, workflow: Any, *, changed: bool) -> bytes:
    """The bytes to write: the input unchanged when nothing changed, else the same format rewritten."""
    if not changed:
        return loaded.raw
    text = dump_yaml(workflow).encode("utf-8")
    if loaded.fmt == "yaml":
        return text
    buffer = io.BytesIO()
    if loaded.fmt == "tar":
        with (
            tarfile.open(fileobj=io.BytesIO(loaded.raw), mode="r:*") as src,
            tarfile.open(fileobj=buffer, mode="w:gz") as dst,
        ):
            for member in src.getmembers():
                if member.name == PIPELINE_MEMBER:
                    info = tarfile.TarInfo(PIPELINE_MEMBER)
                    info.size = len(text)
                    info.mtime = member.mtime
                    info.mode = member.mode
                    dst.addfile(info, io.BytesIO(text))
                else:
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    else:
        with (
            zipfile.ZipFile(io.BytesIO(loaded.raw)) as src,
            zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as dst,
        ):
            for item in src.infolist():
                data = text if item.filename == PIPELINE_MEMBER else src.read(item)
                dst.writestr(item, data)
    return buffer.getvalue()


def check_output_path(output: str, loaded: Loaded) -> None:
    """Refuse an output path that would collide with the input, a directory, or another format."""
    if output == "-":
        return
    path = Path(output)
    if path.is_dir():
        raise InputError(f"{output}: is a directory; give a file path for -o")
    if loaded.name != "<stdin>" and path.exists() and path.resolve() == Path(loaded.name).resolve():
        raise InputError(f"{output}: is the input file; write to another path (nothing was written)")
    if not path.parent.exists():
        raise InputError(f"{output}: directory {path.parent} does not exist")
    wanted = _format_of(output, b"")
    if wanted != loaded.fmt and not (loaded.fmt == "yaml" and wanted == "yaml"):
        raise InputError(f"{output}: a {wanted} name for {loaded.fmt} input; keep the input's format")


def write_output(output: str, data: bytes, stdout: BinaryIO) -> None:
    """Write atomically: the output path holds either its old content or the whole new one."""
    if output == "-":
        stdout.write(data)
        stdout.flush()
        return
    path = Path(output)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
