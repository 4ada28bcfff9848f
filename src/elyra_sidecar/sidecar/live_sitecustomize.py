"""elyra-sidecar live output, installed as `sitecustomize.py` on the main container's PYTHONPATH.

This module runs at start-up of every Python process in the container and does nothing, except in the
process that runs the node's script (`python3 <ELYRA_SIDECAR_LIVE_SCRIPT>`). There it copies what the
script writes to fds 1 and 2, as it is written, to up to two more places:

- `ELYRA_SIDECAR_LIVE_LOG`, a file the elyra-log sidecar follows (Elyra 4.x keeps the output in memory
  and writes `<name>.log` only after success);
- with `ELYRA_SIDECAR_LIVE_MAIN=1`, main's log: the parent bootstrapper's standard output
  (`/proc/<ppid>/fd/1`), the only container the KFP UI's Logs tab shows. Whole lines per write(2), at
  most `_LINE_MAX` bytes each, so the bootstrapper's own lines never land inside one of ours.

How, by what fd 1 is:
- a regular file that fd 2 shares (Elyra 2.x-3.x: `stdout=log_file, stderr=STDOUT`): the script's fds
  stay untouched; a follower process reads that file as it grows, until the script's process is gone;
- anything else (Elyra 4.x: the bootstrapper's pipe): fds 1 and 2 go into a pipe to a tee process that
  copies every chunk first to where they went before (the bootstrapper still receives every byte, in
  order), then to main's log, then to the live log. Child processes and `exec`ed programs inherit the
  pipe.

The helper process is a grandchild, not a child, so the script's `os.wait()` never sees it, and it
names itself `elyra-sidecar-live` (its command line and comm), so a script that kills other processes
with its own command line (`pkill -f`) does not kill it. In the 2.x-3.x shape the script's exit waits
(bounded) until the follower has copied everything to main's log. It never changes the script's exit
status, and any failure (fork, closed fds, a place that cannot be opened or
stops taking writes) leaves the script and the other places as they would be without it. A
`sitecustomize` the image already has still runs afterwards.

Main's `PYTHONPATH` entry replaces the one the image sets (Kubernetes semantics). So in every process,
when `PYTHONPATH` is exactly this directory and `ELYRA_SIDECAR_LIVE_IMAGE_PYTHONPATH` names the file an
init container running main's image recorded the image's value in, that value's entries go back on
`sys.path` right after this directory and into `os.environ["PYTHONPATH"]`, for child processes.

Standard library only, and syntax for Python 3.6+, because it runs in the user's image.
"""

import os
import stat
import sys
from typing import Callable, Dict, List, Optional, Tuple

_SCRIPT_ENV = "ELYRA_SIDECAR_LIVE_SCRIPT"
_LOG_ENV = "ELYRA_SIDECAR_LIVE_LOG"
_MAIN_ENV = "ELYRA_SIDECAR_LIVE_MAIN"
_ACTIVE_ENV = "ELYRA_SIDECAR_LIVE_ACTIVE"
_IMAGE_PATH_ENV = "ELYRA_SIDECAR_LIVE_IMAGE_PYTHONPATH"
#: What the helper process calls itself (/proc/<pid>/cmdline, and comm at most 15 bytes).
_HELPER_NAME = b"elyra-sidecar-live"
#: Longest wait, at the script's exit, for the follower to have copied everything to main's log.
_DRAIN_TIMEOUT = 10.0
_CHUNK = 65536
#: Largest write to main's log: PIPE_BUF on Linux, so a write to a pipe is atomic (never interleaved).
_LINE_MAX = 4096
#: Seconds between looks at a followed file that did not grow (regular files give no readiness events).
_FOLLOW_INTERVAL = 0.05


def _here() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def _restore_image_pythonpath() -> None:
    """Put the image's own PYTHONPATH (recorded by an init container) back after this directory.

    Only while PYTHONPATH is exactly this directory, as the container runtime started the process: a
    child of a process that already did it gets both in its environment, and Python reads them itself."""
    record = os.environ.get(_IMAGE_PATH_ENV)
    current = os.environ.get("PYTHONPATH", "")
    here = _here()
    if not record or not current or os.path.abspath(current) != here:
        return
    try:
        with open(record, "rb") as f:
            data = f.read()
    except OSError:
        if _is_node_script():
            sys.stderr.write(
                "elyra-sidecar live output: the image's PYTHONPATH was not recorded in "
                + record
                + "; only the hook's directory is on it\n"
            )
        return
    if not data.startswith(b"set:") or data == b"set:":
        return  # the image sets none (or an empty one): nothing to put back
    value = os.fsdecode(data[4:])
    absolute = [os.path.abspath(p or ".") for p in sys.path]
    at = absolute.index(here) + 1 if here in absolute else 0
    added = []  # type: List[str]
    for raw in value.split(os.pathsep):
        if not raw:
            continue
        entry = os.path.abspath(raw)
        if entry in added or entry in absolute[:at]:
            continue  # Python keeps the first of two equal entries
        added.append(entry)
    # An entry that is also further down (site-packages, say) moves up, as Python would have placed it.
    rest = [sys.path[i] for i in range(at, len(sys.path)) if absolute[i] not in added]
    sys.path[:] = sys.path[:at] + added + rest
    os.environ["PYTHONPATH"] = current + os.pathsep + value


def _main_wanted() -> bool:
    return os.environ.get(_MAIN_ENV) == "1"


def _is_node_script() -> bool:
    script = os.environ.get(_SCRIPT_ENV)
    if not script or os.environ.get(_ACTIVE_ENV):
        return False
    if not os.environ.get(_LOG_ENV) and not _main_wanted():
        return False
    argv = getattr(sys, "argv", None) or _script_from_cmdline()
    return bool(argv) and os.path.basename(argv[0]) == script


def _script_from_cmdline() -> List[str]:
    """Python 3.6 sets sys.argv after site runs: the script is the first argument that is no option."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            args = f.read().split(b"\0")[1:]
    except OSError:
        return []
    while args and args[0].startswith(b"-"):
        if args[0] in (b"-c", b"-m", b"-"):
            return []  # not a script file
        args = args[2:] if args[0] in (b"-W", b"-X") else args[1:]
    return [os.fsdecode(args[0])] if args and args[0] else []


def _high(fd: int) -> int:
    """`fd` moved above 2 (close-on-exec): a script started with fd 0 or 2 closed gets those numbers
    from open() and pipe(), and the helper closes 0-2 (and the script's dup2 onto 1 and 2 replaces them)."""
    if fd > 2:
        return fd
    import fcntl  # noqa: PLC0415 - only when the script started with fd 0 or 2 closed

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def _pipe() -> Tuple[int, int]:
    r, w = os.pipe()
    try:
        r = _high(r)
    except OSError:
        os.close(w)
        raise
    try:
        return r, _high(w)
    except OSError:
        os.close(r)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _identity(fd: int) -> Optional[Tuple[int, int]]:
    """The (st_dev, st_ino) of what fd refers to (a file, a pipe, a tty), or None if fd is not open."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _open_main() -> Tuple[Optional[int], List[Tuple[int, int]]]:
    """The parent's fd 1 (main's log), opened anew for writing, or None; and what the parent's fds 1 and
    2 refer to: in a container both streams are main's log, so output already going there is not copied.

    O_APPEND: a regular file is written at its end, never from offset 0 over what is there. O_NONBLOCK
    only for the open itself: a named FIFO nobody reads (container runtimes such as containerd give
    containers FIFOs) fails with ENXIO instead of blocking for ever; so does a socket. An anonymous pipe
    nobody reads opens, and its first write fails (EPIPE). The writes block like the bootstrapper's
    own. O_NOCTTY: a tty never becomes our controlling terminal."""
    parent = "/proc/" + str(os.getppid()) + "/fd/"
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = _high(os.open(parent + "1", flags))
    except OSError:
        return None, []
    try:
        os.set_blocking(fd, True)
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None, []
    seen = [(st.st_dev, st.st_ino)]
    try:
        st = os.stat(parent + "2")
        seen.append((st.st_dev, st.st_ino))
    except OSError:
        pass
    return fd, seen


class _Sink:
    """One more place for the bytes; dropped (fd None) at its first failure, nothing else changes."""

    def __init__(self, fd: Optional[int]) -> None:
        self.fd = fd

    def feed(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            _write_all(self.fd, data)
        except OSError:
            self.fd = None

    def close(self) -> None:
        """At the end of the stream."""

    def flush(self) -> None:
        """Before the script exits."""


class _Lines(_Sink):
    """Main's log: the stream in whole lines, batched up to `_LINE_MAX` bytes per write(2)."""

    def __init__(self, fd: Optional[int]) -> None:
        super().__init__(fd)
        self.pending = b""

    def feed(self, data: bytes) -> None:
        if self.fd is None:
            return
        buf = self.pending + data
        end = buf.rfind(b"\n") + 1
        self._emit(buf[:end])
        rest = buf[end:]
        while len(rest) >= _LINE_MAX:  # one very long line: split it, bounded
            self._write(rest[:_LINE_MAX])
            rest = rest[_LINE_MAX:]
        self.pending = rest

    def close(self) -> None:
        """At the end: a last line without its newline is written too, with one, so the bootstrapper's
        next record starts on a line of its own (the script's bytes elsewhere stay as they are)."""
        if self.pending:
            self._write(self.pending + b"\n")
            self.pending = b""

    def flush(self) -> None:
        self.close()

    def _emit(self, whole: bytes) -> None:
        while whole and self.fd is not None:
            cut = len(whole)
            if cut > _LINE_MAX:
                cut = whole.rfind(b"\n", 0, _LINE_MAX) + 1 or _LINE_MAX
            self._write(whole[:cut])
            whole = whole[cut:]

    def _write(self, data: bytes) -> None:
        super().feed(data)  # EPIPE, EBADF, EIO...: this destination is dropped
        if self.fd is None:
            self.pending = b""


def _ignore_signals() -> None:
    import signal  # noqa: PLC0415 - only the helper process needs it

    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def _rename() -> None:
    """Call this process `elyra-sidecar-live`: a forked copy has the script's exact command line, and a
    script that kills "other copies of itself" (`pkill -f job.py`) would kill the helper. The command line
    is the memory between arg_start and arg_end (/proc/self/stat fields 48-49), overwritten through
    /proc/self/mem; comm through /proc/self/comm. Either may fail (old kernel, hardened /proc): no harm."""
    try:
        with open("/proc/self/comm", "wb") as f:
            f.write(_HELPER_NAME[:15])
    except OSError:
        pass
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])
        if end - start < 2:
            return
        name = _HELPER_NAME[: end - start - 1]
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            mem.write(name + b"\0" * (end - start - len(name)))
    except (OSError, ValueError, IndexError, OverflowError):
        pass


def _spawn(run: Callable[[], None]) -> bool:
    """Run `run()` in a grandchild without the script's fds 0-2; True once it exists.

    The intermediate child exits at once and is reaped here, so the helper is not the script's child:
    a script that waits for all its children (`os.wait()` until ChildProcessError) is not held up. The
    grandchild says it exists through a pipe, not an exit status: with SIGCHLD ignored, children are
    reaped by the kernel and waitpid() has no status to give."""
    ready_r, ready_w = _pipe()
    try:
        pid = os.fork()
    except OSError:
        _close([ready_r, ready_w])
        raise
    if pid == 0:
        try:
            os.close(ready_r)
            if os.fork() == 0:
                try:
                    os.chdir("/")
                    _close([0, 1, 2])
                    _rename()
                    _ignore_signals()
                    os.write(ready_w, b"1")
                    os.close(ready_w)
                    run()
                finally:
                    os._exit(0)
        finally:
            os._exit(0)
    os.close(ready_w)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # SIGCHLD ignored: already reaped
    try:
        return os.read(ready_r, 1) == b"1"
    finally:
        os.close(ready_r)


def _tee(sources: Dict[int, Optional[int]], sinks: Dict[int, List[_Sink]]) -> None:
    """Copy each pipe to its original fd, then to its other sinks, until every pipe ends."""
    import select  # noqa: PLC0415 - only the helper process needs it

    live = dict(sources)  # pipe read fd -> original fd (or None once writing there failed)
    while live:
        ready, _, _ = select.select(list(live), [], [])
        for fd in ready:
            try:
                data = os.read(fd, _CHUNK)
            except InterruptedError:
                continue
            if not data:
                del live[fd]
                for sink in sinks[fd]:
                    sink.close()
                continue
            target = live[fd]
            if target is not None:
                try:
                    _write_all(target, data)
                except OSError:
                    live[fd] = None  # the reader went away: keep the other copies going
            for sink in sinks[fd]:
                sink.feed(data)


def _start_time(pid: int) -> Optional[str]:
    """Field 22 of /proc/<pid>/stat (start time), or None if the process is gone or a zombie."""
    try:
        with open("/proc/" + str(pid) + "/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode("ascii")


def _follow(  # noqa: C901 - the helper's one poll loop: data, drain requests, the script's end
    source: int, pid: int, started: Optional[str], sinks: List[_Sink], *, requests: Optional[int], acks: int
) -> None:
    """Copy what is appended to `source` to the sinks while process `pid` runs, then the rest.

    A byte on `requests` (the script is exiting): copy what is there now, flush, answer on `acks`."""
    import select  # noqa: PLC0415 - only the helper process needs it

    running = True
    while True:
        data = os.read(source, _CHUNK)
        if data:
            for sink in sinks:
                sink.feed(data)
            continue
        if not running:
            break
        # The check comes after an empty read, and one more read follows it, so nothing the script wrote
        # before it ended is missed.
        running = started is not None and _start_time(pid) == started
        if not running:
            continue
        ready, _, _ = select.select([requests] if requests is not None else [], [], [], _FOLLOW_INTERVAL)
        if not ready:
            continue
        if not os.read(ready[0], 64):
            requests = None  # nobody can ask any more: poll only
            continue
        data = os.read(source, _CHUNK)
        while data:
            for sink in sinks:
                sink.feed(data)
            data = os.read(source, _CHUNK)
        for sink in sinks:
            sink.flush()
        try:
            os.write(acks, b"1")
        except OSError:
            pass
    for sink in sinks:
        sink.close()


def _drain_at_exit(requests: int, acks: int, pid: int) -> None:
    """atexit in the script (after its traceback is written): wait until the follower has copied
    everything to main's log, so the bootstrapper's next record, and its exit, come after it."""
    if os.getpid() != pid:
        return  # a forked child of the script
    import select  # noqa: PLC0415

    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:  # noqa: S110 - a closed or broken stream: nothing more of it to wait for
        pass
    try:
        os.write(requests, b"1")
        if select.select([acks], [], [], _DRAIN_TIMEOUT)[0]:
            os.read(acks, 1)
    except OSError:
        pass


def _open_log() -> Optional[int]:
    path = os.environ.get(_LOG_ENV)
    if not path:
        return None
    try:
        return _high(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644))
    except OSError:
        return None


def _close(fds: List[Optional[int]]) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def _start_follower(main_fd: Optional[int], log_fd: Optional[int]) -> bool:
    """fd 1 is a regular file that fd 2 shares: follow the file; the script's fds stay as they are."""
    opened = [main_fd, log_fd]  # type: List[Optional[int]]
    kept = []  # type: List[int]
    try:
        source = _high(os.open("/proc/self/fd/1", os.O_RDONLY | os.O_CLOEXEC))
        opened.append(source)
        os.lseek(source, os.lseek(1, 0, os.SEEK_CUR), os.SEEK_SET)  # what is already there is not ours
        requests_r, requests_w = _pipe()
        opened += [requests_r, requests_w]
        acks_r, acks_w = _pipe()
        opened += [acks_r, acks_w]
        pid = os.getpid()
        started = _start_time(pid)
        sinks = [_Lines(main_fd), _Sink(log_fd)]

        def run() -> None:
            _close([requests_w, acks_r])  # the script's ends
            _follow(source, pid, started, sinks, requests=requests_r, acks=acks_w)

        if _spawn(run):
            kept = [requests_w, acks_r]
    except OSError:
        pass
    finally:
        _close([fd for fd in opened if fd not in kept])
    if not kept:
        return False
    import atexit  # noqa: PLC0415

    atexit.register(_drain_at_exit, requests_w, acks_r, pid)
    return True


def _start_tee(main_fd: Optional[int], log_fd: Optional[int], main_ids: List[Tuple[int, int]]) -> bool:
    """Put a pipe under fds 1 and 2 whose reader copies to the original fds and to the other places."""
    out_id, err_id = _identity(1), _identity(2)
    merged = err_id is not None and err_id == out_id
    opened: List[Optional[int]] = [main_fd, log_fd]
    try:
        out_fd = _high(os.dup(1))
        opened.append(out_fd)
        err_fd = _high(os.dup(2)) if err_id is not None else None
        opened.append(err_fd)
        out_r, out_w = _pipe()
        opened += [out_r, out_w]
        err_r = err_w = None
        if err_fd is not None and not merged:
            err_r, err_w = _pipe()
            opened += [err_r, err_w]
    except OSError:
        _close(opened)
        return False
    log = _Sink(log_fd)

    def sinks_for(target_id: Optional[Tuple[int, int]]) -> List[_Sink]:
        # Where a stream already goes to main's log, a copy there would show every line twice.
        return [_Lines(main_fd if target_id not in main_ids else None), log]

    sources: Dict[int, Optional[int]] = {out_r: out_fd}
    sinks = {out_r: sinks_for(out_id)}
    if err_r is not None:
        sources[err_r] = err_fd
        sinks[err_r] = sinks_for(err_id)
    wanted = any(sink.fd is not None for each in sinks.values() for sink in each)

    def run() -> None:
        _close([out_w, err_w])  # the script's ends: the tee must see end-of-file when the script is done
        _tee(sources, sinks)

    try:
        started = wanted and _spawn(run)
    except OSError:
        started = False
    if started:
        # The script: fds 1 and 2 now feed the tee; the bootstrapper still gets every byte through it.
        os.dup2(out_w, 1)
        if err_fd is not None:
            os.dup2(err_w if err_w is not None else out_w, 2)
    _close(opened)
    return started


def _start() -> bool:
    if _identity(1) is None:
        return False  # fd 1 closed: nothing to copy
    main_fd, main_ids = _open_main() if _main_wanted() else (None, [])
    out = os.fstat(1)
    follow = stat.S_ISREG(out.st_mode) and _identity(2) == (out.st_dev, out.st_ino)
    if follow and (out.st_dev, out.st_ino) in main_ids:
        _close([main_fd])
        main_fd = None  # the script already writes into main's log
    log_fd = _open_log()
    if main_fd is None and log_fd is None:
        return False
    return _start_follower(main_fd, log_fd) if follow else _start_tee(main_fd, log_fd, main_ids)


def _chain_image_sitecustomize() -> None:
    """Run the image's own sitecustomize, if any, found on sys.path after this file's directory."""
    import importlib.machinery  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None or spec.origin == os.path.abspath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


try:
    _restore_image_pythonpath()
except Exception:  # noqa: S110 - never break the user's process
    pass
if _is_node_script():
    try:
        if _start():
            os.environ[_ACTIVE_ENV] = "1"  # child processes share the pipe or the file: no second copy
    except Exception:  # noqa: S110 - never break the user's script
        pass
_chain_image_sitecustomize()
