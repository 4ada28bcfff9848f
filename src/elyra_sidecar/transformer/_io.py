"""Reading and writing Workflows: plain YAML, or a KFP package (.tar.gz/.tgz/.zip holding pipeline.yaml)."""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import yaml

from elyra_sidecar.transformer._yaml import UnusualValueError, YamlLimitError, emit_document, load_documents

__all__ = [
    "MAX_INPUT_BYTES",
    "InputError",
    "Loaded",
    "StdoutError",
    "dump_yaml",
    "load_input",
    "render_output",
    "write_output",
]

Format = Literal["yaml", "tar", "zip"]
PIPELINE_MEMBER = "pipeline.yaml"
#: Largest input read, and largest archive content unpacked (a Workflow the API server takes is < 3 MiB;
#: KFP takes packages up to 32 MiB). Bounds memory and time whatever is piped in or packed.
MAX_INPUT_BYTES = 64 << 20

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class InputError(ValueError):
    """The input or output cannot be used; the message says what and where."""


class StdoutError(InputError):
    """Standard output failed part way (full disk, closed pipe): the caller should stop using it."""


class _Dumper(_BaseDumper):  # type: ignore[misc]
    """Block style everywhere, multi-line strings as `|` literals so diffs stay readable, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - PyYAML's signature
        return True


def _represent_str(dumper: Any, value: str) -> Any:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


_DUMP_OPTIONS: dict[str, Any] = {"default_flow_style": False, "allow_unicode": True, "width": 100}


def dump_yaml(data: Any) -> str:
    """The YAML text of `data`: what `yaml.dump` with `_Dumper` writes, byte for byte, about twice as fast.

    Plain data goes to the emitter as events directly (no representer nodes, no per-scalar resolver calls
    for repeated strings); anything else (dates, bytes, sets) takes PyYAML's own path.
    """
    stream = io.StringIO()
    dumper = _Dumper(stream, sort_keys=False, **_DUMP_OPTIONS)
    try:
        dumper.open()
        emit_document(dumper, data)
        dumper.close()
    except UnusualValueError:
        return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, **_DUMP_OPTIONS))
    finally:
        dumper.dispose()
    return stream.getvalue()


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
        documents = [d for d in load_documents(decoded) if d is not None]
    except YamlLimitError as exc:
        raise InputError(f"{where}: {exc}") from exc
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


def _too_large(where: str, what: str = "") -> InputError:
    return InputError(f"{where}: {what}larger than {MAX_INPUT_BYTES >> 20} MiB; refusing to read it")


def _gunzip(raw: bytes, where: str) -> bytes:
    """The decompressed bytes of a gzip stream (every member), refused past MAX_INPUT_BYTES."""
    out = bytearray()
    data = raw
    while data:
        inflate = zlib.decompressobj(wbits=31)
        while data and not inflate.eof:
            out += inflate.decompress(data, MAX_INPUT_BYTES + 1 - len(out))
            if len(out) > MAX_INPUT_BYTES:
                raise _too_large(where, "unpacked, ")
            data = inflate.unconsumed_tail
        if not inflate.eof:
            raise InputError(f"{where}: damaged tar archive (the gzip stream ends early)")
        data = inflate.unused_data.lstrip(b"\0")  # gzip allows padding between members
    return bytes(out)


def _tar_bytes(raw: bytes, where: str) -> bytes:
    return _gunzip(raw, where) if raw[:2] == b"\x1f\x8b" else raw


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    if info.flag_bits & 0x1:
        raise InputError(f"{where}: {info.filename} in the package is encrypted")
    try:
        return zf.read(info)
    except NotImplementedError as exc:  # a compression method Python does not read
        raise InputError(
            f"{where}: {info.filename} in the package uses compression method {info.compress_type}, "
            "which cannot be read"
        ) from exc


def _check_zip(zf: zipfile.ZipFile, where: str) -> None:
    """Every member will be copied on output: refuse encrypted ones and more than MAX_INPUT_BYTES."""
    total = 0
    for info in zf.infolist():
        if info.flag_bits & 0x1:
            raise InputError(f"{where}: {info.filename} in the package is encrypted")
        total += info.file_size  # zipfile never reads past a member's declared size
        if total > MAX_INPUT_BYTES:
            raise _too_large(where, "unpacked, ")


def _read_archive_member(raw: bytes, fmt: Format, where: str) -> bytes:
    try:
        if fmt == "tar":
            with tarfile.open(fileobj=io.BytesIO(_tar_bytes(raw, where)), mode="r:") as tar:
                try:
                    member = tar.getmember(PIPELINE_MEMBER)
                except KeyError:
                    raise InputError(f"{where}: KFP package without {PIPELINE_MEMBER}") from None
                if not member.isreg():
                    raise InputError(f"{where}: {PIPELINE_MEMBER} in the package is not a regular file")
                handle = tar.extractfile(member)
                if handle is None:  # pragma: no cover - a regular member always has a file object
                    raise InputError(f"{where}: {PIPELINE_MEMBER} in the package is not a file")
                return handle.read()
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            _check_zip(zf, where)
            try:
                info = zf.getinfo(PIPELINE_MEMBER)
            except KeyError:
                raise InputError(f"{where}: KFP package without {PIPELINE_MEMBER}") from None
            return _zip_member(zf, info, where)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, RuntimeError) as exc:
        raise InputError(f"{where}: damaged {fmt} archive ({exc})") from exc


def _read_bounded(stream: BinaryIO, where: str) -> bytes:
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise _too_large(where)
    return data


def load_input(source: str, stdin: BinaryIO | None = None) -> Loaded:
    """Read `source` (a path, or `-` for standard input) and parse the Workflow in it."""
    if source == "-":
        if stdin is None:
            raise InputError("-: no standard input (it is closed)")
        name = "<stdin>"
        try:
            raw = _read_bounded(stdin, name)
        except OSError as exc:
            raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    else:
        try:
            with Path(source).open("rb") as handle:
                raw = _read_bounded(handle, source)
        except IsADirectoryError:
            raise InputError(f"{source}: is a directory, expected a Workflow file") from None
        except OSError as exc:
            raise InputError(f"{source}: cannot read: {exc.strerror or exc}") from exc
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
    try:
        if loaded.fmt == "tar":
            _rewrite_tar(loaded, text, buffer)
        else:
            _rewrite_zip(loaded, text, buffer)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, RuntimeError) as exc:
        raise InputError(f"{loaded.name}: damaged {loaded.fmt} archive ({exc})") from exc
    return buffer.getvalue()


def _rewrite_tar(loaded: Loaded, text: bytes, buffer: BinaryIO) -> None:
    with (
        tarfile.open(fileobj=io.BytesIO(_tar_bytes(loaded.raw, loaded.name)), mode="r:") as src,
        tarfile.open(fileobj=buffer, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            if member.name == PIPELINE_MEMBER:
                info = tarfile.TarInfo(PIPELINE_MEMBER)
                info.size = len(text)
                info.mtime = member.mtime
                info.mode = member.mode
                dst.addfile(info, io.BytesIO(text))
            else:  # links and other members are copied as entries, never followed
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def _rewrite_zip(loaded: Loaded, text: bytes, buffer: BinaryIO) -> None:
    with (
        zipfile.ZipFile(io.BytesIO(loaded.raw)) as src,
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as dst,
    ):
        for item in src.infolist():
            data = text if item.filename == PIPELINE_MEMBER else _zip_member(src, item, loaded.name)
            dst.writestr(item, data)


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


def _write_all(write: Any, data: bytes) -> None:
    """Write every byte: an unbuffered stream (PYTHONUNBUFFERED=1) may take only part of them per call."""
    view = memoryview(data)
    while view:
        written = write(view)
        if written is None:  # a non-blocking stream that is full
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        view = view[written:]


def _write_into(output: str, path: Path, data: bytes) -> None:
    try:
        with path.open("wb") as handle:
            _write_all(handle.write, data)
    except OSError as exc:
        raise InputError(f"{output}: cannot write: {exc.strerror or exc}") from exc


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_output(output: str, data: bytes, stdout: BinaryIO | None) -> None:  # noqa: C901 - stdout, a device/FIFO, a link, or an atomic replace keeping the mode: each its own branch
    """Write all of `data` to `output` (`-`: standard output), or raise InputError saying where it failed.

    A file is replaced atomically: it holds either its old content or the whole new one. A new file gets
    the mode a shell redirection would give it (0666 less the umask), an existing one keeps its mode. A
    symbolic link is written through, as `> link` does: its target gets the new content, the link stays.
    Anything else that exists (/dev/null, a FIFO) is written into, never replaced.
    """
    if output == "-":
        if stdout is None:
            raise InputError("standard output: it is closed; nothing was written")
        try:
            _write_all(stdout.write, data)
            stdout.flush()
        except BrokenPipeError:
            raise StdoutError("standard output: the reader closed it before the end (broken pipe)") from None
        except OSError as exc:
            raise StdoutError(f"standard output: cannot write: {exc.strerror or exc}") from exc
        return
    path = Path(os.path.realpath(output))  # through symbolic links, to the file they name
    try:
        status = path.stat()
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    except OSError as exc:
        raise InputError(f"{output}: cannot write: {exc.strerror or exc}") from exc
    else:
        if not stat.S_ISREG(status.st_mode):
            # /dev/null, a FIFO, a terminal: write into it. Renaming a file over it would replace the
            # device itself (as root, /dev/null became a regular file).
            _write_into(output, path, data)
            return
        mode = stat.S_IMODE(status.st_mode)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            _write_all(handle.write, data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise InputError(f"{output}: cannot write: {exc.strerror or exc}; nothing was written") from exc
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
