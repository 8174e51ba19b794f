"""The in-sandbox half of the verifier: run one solution on a list of test inputs.

Started as a script (``python -I -B runner.py``) by ``sandbox.run_tests``; standard library only,
because under bubblewrap this file is all of the project that is visible. Protocol: one JSON job on
stdin ``{code, inputs, func_name, limits, base, landlock}``; on stdout a ``{"ready": true, ...}``
line, then one line per test ``{index, status, output, detail, seconds}``. Expected outputs never
enter here, so the code under test cannot read them.

The code is compiled once; each test runs in a forked child that, before running it, redirects
stdin/stdout/stderr to files, sets resource limits, restricts its file access with Landlock where
the kernel has it, installs a seccomp filter and an audit hook, then either executes the program
(stdin tests) or calls ``Solution().<func_name>(*args)``. Each test starts in an empty working
directory, and the runner stops a test that fills it past the disk limit.
"""
from __future__ import annotations

import builtins
import errno
import io
import json
import linecache
import math
import os
import resource
import select
import signal
import sys
import time
import traceback

SOLUTION = "<solution>"
_EXIT_ERROR, _EXIT_MEMORY, _EXIT_OUTPUT, _EXIT_SETUP = 1, 3, 4, 71
_POLL_S = 0.05  # how often the runner checks the working directory's size while a test runs
_MAX_ENTRIES = 10000  # more files than this in the working directory counts as filling the disk

# LiveCodeBench executes every solution after this import block (lcb_runner testing_util), so
# LeetCode starter code may use List, Optional, defaultdict, ... without importing them.
_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
            "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing")
HEADER = "".join(f"from {m} import *\n" for m in _MODULES) + "".join(f"import {m}\n" for m in _MODULES) \
    + "sys.setrecursionlimit(50000)\n"

# The kernel walls live beside this file; -I keeps the script's folder off sys.path, so add it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_guards import (  # noqa: E402, F401  (seccomp_program: re-exported for the tests)
    _LL, LL_READ, LL_WRITE, SYSTEM_READABLE, _kernel_helpers, landlock_abi, landlock_restrict, landlock_ruleset,
    seccomp_program,
)
del sys.path[0]  # nothing else of this folder is importable by the code under test


# ------------------------------------------------------------------ audit hook (Python-level)
# The hook is the first wall in rlimits mode when the kernel has no Landlock, so it must not be
# disarmable from Python: it uses only values captured when it is made (C functions, tuples,
# frozensets) passed as default arguments, no global names (the code could rebind this module's
# globals through sys.modules["__main__"], or builtins, or os.path.realpath, all plain Python), no
# closure cells (a traceback's frames reach them and cell_contents is writable), and refuses what
# would reach or rewrite it anyway: gc's object walks, tracing, frame lists of other threads, code
# object surgery. Path objects other than str/bytes/int are refused: their __fspath__ could answer
# the hook one path and the call another.
_DENY = {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.killpg",
         "os.startfile", "sys.remote_exec", "os.symlink", "gc.get_objects", "gc.get_referrers",
         "gc.get_referents", "sys.settrace", "sys.setprofile", "sys._current_frames", "code.__new__",
         "sys.monitoring.register_callback", "cpython._PySys_ClearAuditHooks"}
_DENY_PREFIXES = ("ctypes.", "socket.", "subprocess.", "_winapi.", "winreg.", "sqlite3.", "resource.",
                  "ftplib.", "http.client.", "smtplib.", "poplib.", "imaplib.", "nntplib.", "telnetlib.",
                  "urllib.", "webbrowser.", "pty.", "syslog.")
# event -> (path index, dir_fd index or None) of each path the event modifies
_WRITES = {"os.mkdir": [(0, 2)], "os.remove": [(0, 1)], "os.rmdir": [(0, 1)], "os.chmod": [(0, 2)],
           "os.chown": [(0, 3)], "os.utime": [(0, 3)], "os.truncate": [(0, None)],
           "os.setxattr": [(0, None)], "os.removexattr": [(0, None)], "os.chflags": [(0, None)],
           "os.lchflags": [(0, None)], "os.rename": [(0, 2), (1, 3)], "os.link": [(0, 2), (1, 3)],
           "shutil.rmtree": [(0, 1)]}
_READS = ("os.listdir", "os.scandir", "os.walk", "os.fwalk", "glob.glob", "glob.glob/2",
          "os.getxattr", "os.listxattr")
_OPEN_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _canonical(path, dir_fd, tools):
    """``path`` (str, bytes, int fd or None = the working directory) made absolute, relative to
    ``dir_fd`` when given, with ``.``, ``..`` and symlinks resolved the way the kernel would, like
    os.path.realpath. Only ``tools`` is used (no global names): see the comment above."""
    getcwd, readlink, lstat, kind, decode, failures, number, raw = tools
    if path is None:
        return getcwd()
    if kind(path) is number:
        path = readlink("/proc/self/fd/%d" % path)
        return path if path.startswith("/") else ""  # pipe:[...] and the like: never a file to allow
    if kind(path) is raw:
        path = decode(path, "utf-8", "surrogateescape")
    if not path.startswith("/"):
        base = getcwd() if dir_fd is None or dir_fd == -1 else readlink("/proc/self/fd/%d" % dir_fd)
        path = base + "/" + path
    done, todo, hops = [], path.split("/")[::-1], 0
    while todo:
        name = todo.pop()
        if name == "" or name == ".":
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        here = "/".join(["", *done, name])
        try:
            link = (lstat(here).st_mode & 0o170000) == 0o120000  # S_ISLNK
        except failures:  # absent (about to be created) or unreadable: taken as written
            link = False
        if not link:
            done.append(name)
            continue
        hops += 1
        if hops > 40:  # ELOOP: the call itself will fail
            return ""
        target = readlink(here)
        if target.startswith("/"):
            done = []
        todo.extend(target.split("/")[::-1])
    return "/".join(["", *done]) or "/"


def _inside(path, roots):
    """Whether ``path`` is one of ``roots`` or below one (no global names, see above)."""
    for root in roots:
        if path == root or path.startswith(root + "/"):
            return True
    return False


def _audit_hook(work: str, readable: tuple[str, ...]):
    """Refuse writes outside ``work``, reads outside ``readable``, symlinks, sockets, subprocesses,
    ctypes, signals to other processes, and the ways to reach or rewrite the hook itself."""
    tools = (os.getcwd, os.readlink, os.lstat, type, bytes.decode, (OSError, ValueError), int, bytes)
    trim = lambda paths: tuple(p.rstrip("/") for p in paths)  # noqa: E731 - "/" becomes "", below everything
    rules = (frozenset(_DENY), tuple(_DENY_PREFIXES), tuple((k, tuple(v)) for k, v in _WRITES.items()),
             frozenset(_READS), _OPEN_WRITE, trim((work, "/dev/null")), trim(readable), trim((work,)),
             (str, bytes, int))

    def hook(event, args, rules=rules, tools=tools, canonical=_canonical, inside=_inside,
             refuse=PermissionError, failures=(OSError, ValueError), kind=type, show=repr, size=len,
             getpid=os.getpid):
        deny, prefixes, writes, reads, open_write, writable, readable, work_only, paths = rules
        number = paths[2]
        if event in deny or event.startswith(prefixes):
            raise refuse("sandbox: " + event + " is not allowed")
        if event == "object.__setattr__":  # __code__, __defaults__ ... of the hook's own helpers
            if args[0] is canonical or args[0] is inside:
                raise refuse("sandbox: the audit hook's helpers cannot be changed")
        elif event == "open":
            path, flags = args[0], args[2]
            if kind(path) is number:  # opening an existing descriptor (e.g. open(1, "w")) is fine
                return
            if kind(path) not in paths:
                raise refuse("sandbox: open() takes a str or bytes path here")
            writing = ((flags or 0) & open_write) != 0
            try:
                where = canonical(path, None, tools)
            except failures:
                where = ""
            if not inside(where, writable if writing else readable):
                raise refuse("sandbox: " + ("writing " if writing else "reading ") + show(path) + " is not allowed")
        elif event == "os.kill":
            if args[0] != getpid():
                raise refuse("sandbox: signalling other processes is not allowed")
        elif event in reads:
            if args and kind(args[0]) is not number:
                if args[0] is not None and kind(args[0]) not in paths:
                    raise refuse("sandbox: " + event + " takes a str or bytes path here")
                try:
                    where = canonical(args[0], None, tools)
                except failures:
                    where = ""
                if not inside(where, readable):
                    raise refuse("sandbox: listing " + show(args[0]) + " is not allowed")
        else:
            for name, specs in writes:
                if name != event:
                    continue
                for index, fd_index in specs:
                    path = args[index]
                    dir_fd = args[fd_index] if fd_index is not None and fd_index < size(args) else None
                    if kind(path) not in paths or (dir_fd is not None and kind(dir_fd) is not number):
                        raise refuse("sandbox: " + event + " takes a str or bytes path here")
                    try:
                        where = canonical(path, dir_fd, tools)
                    except failures:
                        where = ""
                    if not inside(where, work_only):
                        raise refuse("sandbox: " + event + " on " + show(path) + " is not allowed")

    return hook


# ------------------------------------------------------------------ one test
def _child(compiled, namespace, text, func_name, limits, paths, work, readable, kernel,
           _exit=os._exit) -> None:
    """In the forked child: confine, run, and report through the exit status. Never returns.
    (``_exit`` is bound here because the code under test can rebind ``os._exit``.)"""
    install_seccomp, death_signal, libc, ruleset, runner = kernel
    try:
        if death_signal is not None:
            death_signal()  # the runner killed -> this child dies too
            if os.getppid() != runner:  # it died before the signal was armed
                _exit(_EXIT_SETUP)
        for target, (path, flags) in enumerate(paths):
            fd = os.open(path, flags, 0o600)
            if fd != target:  # the lowest free number may already be the target (the return file)
                os.dup2(fd, target)
                os.close(fd)
        os.chdir(work)
        if ruleset is not None:  # after opening the io files, which lie outside what it allows
            landlock_restrict(libc, ruleset)
        os.closerange(len(paths), 1 << 16)
        cpu = math.ceil(limits["time_s"]) + 1
        for name, value in (("RLIMIT_AS", limits["memory_mb"] << 20), ("RLIMIT_CPU", cpu),
                            ("RLIMIT_FSIZE", limits["output_bytes"] + 1), ("RLIMIT_CORE", 0),
                            ("RLIMIT_NOFILE", 128)):
            resource.setrlimit(getattr(resource, name), (value, value + (name == "RLIMIT_CPU")))
        hard = resource.getrlimit(resource.RLIMIT_STACK)[1]  # deep recursion: a roomier main stack
        stack = 256 << 20 if hard == resource.RLIM_INFINITY else min(hard, 256 << 20)
        resource.setrlimit(resource.RLIMIT_STACK, (stack, hard))
        if install_seccomp is not None:
            install_seccomp(os.getpid())
        elif os.getuid() != 0:  # without seccomp, fall back on the per-user process limit
            resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
        sys.stdin = sys.__stdin__ = io.open(0, "r", encoding="utf-8", errors="replace", closefd=False)
        sys.stdout = sys.__stdout__ = io.open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = sys.__stderr__ = io.open(2, "w", encoding="utf-8", closefd=False)
        namespace.update(stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr)
        sys.addaudithook(_audit_hook(work, readable))
    except BaseException:  # noqa: BLE001 - any set-up failure is the sandbox's, not the code's
        _exit(_EXIT_SETUP)
    try:
        try:
            if func_name is None:
                exec(compiled, namespace)  # noqa: S102 - running the solution is the point
            else:
                exec(compiled, namespace)  # noqa: S102
                args = [json.loads(line) for line in text.split("\n") if line.strip()]
                if "Solution" not in namespace:
                    raise NameError("the code defines no class Solution")
                result = getattr(namespace["Solution"](), func_name)(*args)
                result = list(result) if isinstance(result, tuple) else result
                with os.fdopen(3, "w", encoding="utf-8") as ret:
                    ret.write(json.dumps(result, default=lambda o: o.item() if hasattr(o, "item") else repr(o)))
        except SystemExit as stop:  # exit() after printing is normal for stdin programs
            if func_name is not None or stop.code not in (None, 0):
                raise
        threading = sys.modules.get("threading")
        for thread in threading.enumerate() if threading else ():  # as interpreter shutdown does:
            if thread is not threading.main_thread() and not thread.daemon:  # threading.Thread(
                thread.join()  # target=main).start() is a common deep-recursion idiom
        sys.stdout.flush()
    except MemoryError:
        os.write(2, b"MemoryError")
        _exit(_EXIT_MEMORY)
    except OSError as err:
        if err.errno == errno.EFBIG:  # RLIMIT_FSIZE: the output limit
            _exit(_EXIT_OUTPUT)
        _report(err)
    except BaseException as err:  # noqa: BLE001 - every other failure is a runtime error
        _report(err)
    _exit(0)


def _report(err: BaseException, _exit=os._exit) -> None:
    """Write the traceback of the solution's own frames (not the runner's or stdlib's); exit 1."""
    try:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == SOLUTION]
        text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(err), err))
        sys.stderr.write(("Traceback (most recent call last):\n" if frames else "") + text)
        sys.stderr.flush()
    finally:
        _exit(_EXIT_ERROR)


def _wait(pid: int, seconds: float, over_disk) -> tuple[int, float, str | None]:
    """Wait for the child at most ``seconds`` of wall time, checking ``over_disk()`` every
    ``_POLL_S``; kill it when either is exceeded. Returns (status, CPU seconds, why it was stopped:
    None, "timeout" or "disk")."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None  # kernels before 5.3: poll waitpid instead
    end, stopped = time.monotonic() + seconds, None
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                stopped = "timeout"
                break
            if fd is not None:
                if select.select([fd], [], [], min(left, _POLL_S))[0]:
                    break
            else:
                done, status, usage = os.wait4(pid, os.WNOHANG)
                if done:
                    return status, usage.ru_utime + usage.ru_stime, None
                time.sleep(min(left, 0.005))
            if over_disk():
                stopped = "disk"
                break
    finally:
        if fd is not None:
            os.close(fd)
    if stopped:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    return status, usage.ru_utime + usage.ru_stime, stopped


def _disk_used(root: str, limit: int) -> bool:
    """Whether the files under ``root`` take more than ``limit`` bytes (or are too many to count)."""
    total, entries, todo = 0, 0, [root]
    while todo:
        try:
            with os.scandir(todo.pop()) as listing:
                for entry in listing:
                    entries += 1
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
                    if entries > _MAX_ENTRIES or total > limit:
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
        except OSError:  # removed meanwhile, or made unreadable: it is emptied before the next test
            continue
    return False


def _full(path: str) -> bool:
    """Whether the file system holding ``path`` has no space left (the bwrap tmpfs is sized to the
    disk limit, so code that fills it gets ENOSPC, often before the size checks see it)."""
    try:
        return os.statvfs(path).f_bavail == 0
    except OSError:
        return False


def _empty(root: str) -> None:
    """Remove everything under ``root``, including what the code made unreadable (chmod 0)."""
    try:
        listing = list(os.scandir(root))
    except OSError:
        return
    for entry in listing:
        try:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
                _empty(entry.path)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def _classify(status: int, stopped: str | None, cpu: float, limits: dict, out_size: int,
              err: str) -> tuple[str, str]:
    if stopped == "timeout":
        return "timeout", f"Time limit exceeded ({limits['time_s']:g} s)"
    if stopped == "disk":
        return "error", f"Disk limit exceeded: over {limits['disk_mb']} MB (or {_MAX_ENTRIES} files) written"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        cpu_limit = math.ceil(limits["time_s"]) + 1
        # SIGXCPU at the soft CPU limit; SIGKILL at the hard one if the code ignored SIGXCPU.
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit - 0.05):
            return "timeout", f"CPU time limit exceeded ({limits['time_s']:g} s)"
        if sig == signal.SIGXFSZ:
            return "output_limit", f"Output limit exceeded ({limits['output_bytes']} bytes)"
        if sig == signal.SIGKILL:
            return "memory", "Killed (SIGKILL), most likely out of memory"
        if sig == signal.SIGSEGV:
            return "error", "Segmentation fault (often a stack overflow from deep recursion)"
        return "error", f"Killed by signal {signal.Signals(sig).name}"
    code = os.WEXITSTATUS(status)
    if code == _EXIT_OUTPUT or out_size > limits["output_bytes"]:
        return "output_limit", f"Output limit exceeded ({limits['output_bytes']} bytes)"
    if code == _EXIT_MEMORY:
        return "memory", f"Memory limit exceeded ({limits['memory_mb']} MB): MemoryError"
    if code == _EXIT_SETUP:
        return "crashed", "the sandbox could not set up the test"
    if code != 0:
        return "error", err or f"Exit status {code}"
    return "ok", ""


def _tail(path: str, size: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - size))
        return handle.read().decode("utf-8", errors="replace")


def _readable(work: str) -> tuple[str, ...]:
    """What the code may read: the Python installation (sys.path entries inside it, not the
    project folder an editable install or a .pth file may add) and the working directory."""
    prefixes = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)]
    python = [p for p in map(os.path.realpath, sys.path)
              if any(p == root or p.startswith(root + "/") for root in prefixes)]
    return tuple(dict.fromkeys(p for p in [*prefixes, *python, work, "/dev/null", "/dev/zero", "/dev/urandom",
                                           "/usr/share/zoneinfo"] if p and os.path.exists(p)))


def main() -> None:
    if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
        sys.path.pop(0)  # this file's folder: its modules must not shadow what the solution imports
    install_seccomp, death_signal, libc = _kernel_helpers()
    if death_signal is not None:
        death_signal()  # the caller killed or gone -> this runner (and, in turn, its test child) dies
    job = json.loads(sys.stdin.buffer.read())
    limits, func_name, inputs = job["limits"], job["func_name"], job["inputs"]
    work, io_dir = os.path.join(job["base"], "work"), os.path.join(job["base"], "io")
    os.makedirs(work, exist_ok=True)
    os.makedirs(io_dir, exist_ok=True)
    work = os.path.realpath(work)

    def emit(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    namespace = {"__name__": "__main__" if func_name is None else "solution", "__builtins__": builtins}
    exec(HEADER, namespace)  # noqa: S102 - a fixed import block, run once before forking
    code = job["code"]
    linecache.cache[SOLUTION] = (len(code), None, code.splitlines(True), SOLUTION)  # traceback lines
    try:
        compiled = compile(code, SOLUTION, "exec")
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as err:
        detail = "".join(traceback.format_exception_only(type(err), err))
        emit({"index": 0, "status": "compile_error", "detail": detail})
        return
    readable = _readable(work)
    ruleset, landlock = None, "off"
    if job.get("landlock", True) and libc is not None:
        try:
            ruleset = landlock_ruleset(libc, [(p, LL_READ) for p in (*SYSTEM_READABLE, *readable)]
                                       + [("/dev/null", _LL["read_file"] | _LL["write_file"] | _LL["truncate"]),
                                          (work, LL_WRITE)])
            landlock = landlock_abi(libc)
        except OSError as err:  # no Landlock in this kernel: the audit hook is the file wall
            landlock = f"unavailable ({err.strerror or err})"
    kernel = (install_seccomp, death_signal, libc, ruleset, os.getpid())
    write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    names = ["stdin", "stdout", "stderr"] + ([] if func_name is None else ["return"])
    paths = [(os.path.join(io_dir, n), os.O_RDONLY if n == "stdin" else write) for n in names]
    emit({"ready": True, "seccomp": install_seccomp is not None, "landlock": landlock})
    disk = limits.get("disk_mb", 256) << 20
    for index, text in enumerate(inputs):
        os.chmod(work, 0o700)  # the code may have made it unreadable
        _empty(work)  # every test starts from an empty working directory
        with open(paths[0][0], "w", encoding="utf-8") as handle:
            handle.write(text if func_name is None else "")
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(compiled, dict(namespace), text, func_name, limits, paths, work, readable, kernel)
        status, cpu, stopped = _wait(pid, limits["time_s"], lambda: _disk_used(work, disk))
        seconds = time.monotonic() - start
        if stopped is None and (_disk_used(work, disk) or (status and _full(work))):
            stopped = "disk"  # filled it faster than the checks came, or filled the bwrap tmpfs
        result_path = paths[-1][0] if func_name is not None else paths[1][0]
        size = os.path.getsize(result_path) if os.path.exists(result_path) else 0
        name, detail = _classify(status, stopped, cpu, limits, size, _tail(paths[2][0], 4000))
        output = ""
        if name == "ok":
            with open(result_path, "rb") as handle:
                output = handle.read(limits["output_bytes"]).decode("utf-8", errors="replace")
        emit({"index": index, "status": name, "output": output, "detail": detail, "seconds": round(seconds, 4)})


if __name__ == "__main__":
    main()
