"""Run untrusted solution code against test inputs, isolated and resource-limited.

One *runner* process per sample (``runner.py`` run as a script, stdlib only) receives the code and the
test inputs — never the expected outputs — on stdin, compiles the code once, then forks one child
per test and streams one JSON line per test back (status, output, error text, seconds). The caller
compares outputs as they arrive and kills the runner at the first failure.

Isolation has two modes (``sandbox_mode()``; override with ``PMD_SANDBOX=bubblewrap|rlimits``):

* ``"bubblewrap"``: the runner starts inside ``bwrap`` with every namespace unshared (no network,
  own PID space, own /proc), only the OS libraries, the Python installation and this file mounted
  read-only, a size-limited tmpfs as /tmp (the working directory lives there) and nothing else of
  the host visible or writable. Chosen automatically when a probe run of ``bwrap`` succeeds.
* ``"rlimits"``: the fallback when ``bwrap`` is missing or cannot create namespaces. The runner is a
  plain child process working in a fresh temporary directory.

In both modes each test child gets: resource limits (address space, CPU seconds, file size = the
output limit, open files, processes when not root), a wall-clock limit and a disk limit on its
working directory enforced by the runner, a fresh empty working directory, a Landlock ruleset
where the kernel has Landlock (reads only of the system libraries, the Python installation and the
working directory; writes only there), a seccomp filter (see ``runner.seccomp_program``) that
refuses new processes, ``execve``, sockets, signals to other processes, leaving the process group
and mount/ptrace-style escapes at the kernel level, and a Python audit hook that refuses the same
file accesses, sockets, subprocesses, signals and ``ctypes`` with clear messages. In rlimits mode
Landlock is what keeps files outside the work directory safe; on a kernel without it that falls to
the audit hook alone, which is hardened against being disarmed from Python but, being Python-level,
is best effort (``PMD_SANDBOX_LANDLOCK=0`` turns Landlock off, to test exactly that). Bubblewrap
enforces it with mount namespaces. Killing the runner's process group (it runs in its own session)
ends everything: the test child cannot leave the group (seccomp) and also has a parent-death
signal; under bwrap the PID namespace dies with it.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass

MODES = ("bubblewrap", "rlimits")
ENV_VAR = "PMD_SANDBOX"
LANDLOCK_VAR = "PMD_SANDBOX_LANDLOCK"  # "0": no Landlock ruleset for the test children
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")  # run as a script
KERNEL_GUARDS = os.path.join(os.path.dirname(RUNNER), "kernel_guards.py")  # the one module it imports
_STARTUP_S = 15.0  # runner start-up allowance on a loaded machine (bwrap + interpreter + imports)


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the solution): bwrap missing when forced, runner never started."""


@dataclass(frozen=True)
class Limits:
    """Per-test limits. ``memory_mb`` caps the address space (RLIMIT_AS), ``output_bytes`` stdout."""

    time_s: float = 6.0
    memory_mb: int = 4096
    output_bytes: int = 16 << 20
    disk_mb: int = 256  # the working directory's size limit (and the bwrap tmpfs size)
    processes: int = 256  # RLIMIT_NPROC (threads count too); the kernel ignores it for root


@dataclass(frozen=True)
class TestRun:
    """What one test did. ``status``: ok, error, timeout, memory, output_limit, compile_error,
    crashed (the sandbox ended mid-test). ``output`` is stdout for stdin tests and the JSON of the
    return value for functional ones."""

    index: int
    status: str
    output: str = ""
    detail: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------ choosing the mode
_probe_lock = threading.Lock()
_probe: dict = {}


def _bwrap_command(limits: Limits, variant: tuple[bool, bool]) -> list[str]:
    """The bwrap prefix for ``variant = (with_userns, with_size)``; both are dropped by the probe
    where the installed bwrap or kernel refuses them (setuid bwrap, bwrap < 0.8)."""
    with_userns, with_size = variant
    cmd = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
           "--cap-drop", "ALL", "--hostname", "sandbox"]
    if with_userns:  # an unprivileged uid inside, so root-owned host files look foreign where possible
        cmd += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):  # merged-/usr systems: keep the symlink, /usr is bound already
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    # Only the loader's cache and the time zone from /etc: secrets there would look readable.
    for path in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        if os.path.exists(path):
            cmd += ["--ro-bind", path, path]
    # The writable tmpfs goes first: a checkout or virtualenv that itself lives under /tmp is then
    # bound read-only on top of it instead of being hidden by it.
    if with_size:
        cmd += ["--size", str(limits.disk_mb << 20)]
    cmd += ["--tmpfs", "/tmp"]
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    for path in sorted(p for p in prefixes if p and p != "/usr" and not p.startswith("/usr/")):
        cmd += ["--ro-bind", path, path]
    cmd += ["--ro-bind", RUNNER, RUNNER, "--ro-bind", KERNEL_GUARDS, KERNEL_GUARDS, "--proc", "/proc", "--dev", "/dev"]
    return cmd + ["--chdir", "/tmp"]


def _probe_bwrap() -> dict:
    """Find a bwrap invocation that works here, once per process: {"variant": ...} or {"error": ...}."""
    with _probe_lock:
        if _probe:
            return _probe
        if shutil.which("bwrap") is None:
            _probe["error"] = "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
            return _probe
        errors = []
        for variant in ((True, True), (True, False), (False, True), (False, False)):
            cmd = _bwrap_command(Limits(), variant) + [sys.executable, "-I", "-c", "print('ok')"]
            try:
                done = subprocess.run(cmd, capture_output=True, timeout=30, env=_child_env())
            except (OSError, subprocess.TimeoutExpired) as err:
                errors.append(str(err))
                continue
            if done.returncode == 0 and done.stdout.strip() == b"ok":
                _probe["variant"] = variant
                return _probe
            errors.append(done.stderr.decode(errors="replace").strip()[-300:])
        _probe["error"] = "bwrap failed: " + " | ".join(dict.fromkeys(errors))
        return _probe


def sandbox_mode() -> str:
    """``"bubblewrap"`` when bwrap works here, else ``"rlimits"``; ``PMD_SANDBOX`` forces either
    (forcing bubblewrap where it cannot run raises ``SandboxError`` instead of degrading quietly)."""
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced and forced not in MODES:
        raise ValueError(f"{ENV_VAR}={forced!r}: expected one of {', '.join(MODES)}")
    probe = _probe_bwrap() if forced != "rlimits" else {}
    if forced == "bubblewrap" and "variant" not in probe:
        raise SandboxError(f"{ENV_VAR}=bubblewrap but {probe['error']}")
    return forced or ("bubblewrap" if "variant" in probe else "rlimits")


def sandbox_info() -> dict:
    """The mode in force and why, for logs and reports."""
    from tasks.livecodebench.runner import landlock_abi, seccomp_program  # noqa: PLC0415

    probe = _probe_bwrap()
    return {"mode": sandbox_mode(), "bwrap": shutil.which("bwrap"), "bwrap_error": probe.get("error"),
            "bwrap_userns": probe.get("variant", (None,))[0], "seccomp": seccomp_program() is not None,
            "landlock": landlock_abi() if _landlock_wanted() else 0}


def _landlock_wanted() -> bool:
    return os.environ.get(LANDLOCK_VAR, "1").strip() != "0"


def _child_env() -> dict:
    # A fixed, minimal environment: nothing of the caller's (tokens, proxies) reaches the code.
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ------------------------------------------------------------------ caller side
def run_tests(code: str, inputs: list[str], *, func_name: str | None = None, limits: Limits = Limits(),
              on_result=None, mode: str | None = None) -> list[TestRun]:
    """Run ``code`` on each input in order, in a fresh sandbox; return one ``TestRun`` per test run.

    ``func_name`` set means functional tests: each input holds one JSON argument per line and
    ``Solution().<func_name>(*args)`` is called. ``on_result(run)`` is called as each test finishes;
    returning False stops the run there (the sandbox is killed), which is how the verifier stops
    at the first failing test. A compile error is reported as test 0 with status compile_error.
    """
    mode = mode or sandbox_mode()
    host_dir = tempfile.mkdtemp(prefix="pmd-sandbox-")  # rlimits: the work dir; bwrap: unused
    if mode == "bubblewrap":
        cmd, base = _bwrap_command(limits, _probe_bwrap()["variant"]), "/tmp"
    else:
        cmd, base = [], host_dir
    cmd += [sys.executable, "-I", "-B", RUNNER]
    job = json.dumps({"code": code, "inputs": list(inputs), "func_name": func_name,
                      "limits": asdict(limits), "base": base, "landlock": _landlock_wanted()}).encode()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=_child_env(), cwd=host_dir)
    runs: list[TestRun] = []
    ready, stopped = False, False
    try:
        _feed(proc, job)
        deadline = time.monotonic() + _STARTUP_S + len(inputs) * (limits.time_s + 1.0)
        for line in _read_lines(proc.stdout, deadline):
            if line is None:  # the wall-clock deadline of the whole run passed
                if ready:  # charge the test that was running; before "ready" it is the sandbox's fault
                    runs.append(TestRun(len(runs), "timeout", detail="the run exceeded its overall deadline"))
                stopped = True
                break
            run = _parse(line, len(runs))
            if run is None:
                ready = True
                continue
            runs.append(run)
            if run.status in ("compile_error", "crashed") or (on_result is not None and on_result(run) is False):
                stopped = True
                break
    finally:
        stderr = _stop(proc)
        _remove_tree(host_dir)
    if not runs and not ready:
        raise SandboxError(f"the sandbox runner did not start ({mode}): {stderr[-800:]}")
    if not stopped and len(runs) < len(inputs):  # the runner died mid-test: the code's doing
        runs.append(TestRun(len(runs), "crashed", detail="the sandbox ended before the test finished"))
    return runs


def _parse(line: bytes, index: int) -> TestRun | None:
    """The runner's line as a TestRun, None for its "ready" line; a line that is not the runner's
    protocol (which only a broken sandbox would let through) is a crash of test ``index``."""
    try:
        message = json.loads(line)
        if message.get("ready"):
            return None
        run = TestRun(**message)
        if run.index != index:
            raise ValueError(f"result for test {run.index}, expected {index}")
        return run
    except (ValueError, TypeError, AttributeError) as err:
        return TestRun(index, "crashed", detail=f"the sandbox sent an unreadable result ({err})")


def _remove_tree(path: str) -> None:
    """Delete ``path`` even where the code under test made folders unreadable (chmod 0), without
    following symlinks out of it."""
    for root, dirs, _ in os.walk(path):  # top-down: each folder is opened up before it is listed
        for name in dirs:
            folder = os.path.join(root, name)
            try:
                if not os.path.islink(folder):  # nothing runs any more: no race with the check
                    os.chmod(folder, 0o700)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


def _feed(proc: subprocess.Popen, job: bytes) -> None:
    # The runner reads the whole job before writing anything, so a blocking write cannot deadlock.
    stdin, proc.stdin = proc.stdin, None  # so communicate() later leaves it alone
    try:
        stdin.write(job)
        stdin.close()
    except BrokenPipeError:  # bwrap failed at start-up; its stderr says why
        pass


def _read_lines(stream, deadline: float):
    """Yield complete lines from ``stream`` until EOF; yield None once if ``deadline`` passes."""
    fd, buffer = stream.fileno(), b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(timeout=left):
                yield None
                return
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            yield from lines


def _stop(proc: subprocess.Popen) -> str:
    """Kill the runner's whole process group, reap it, and return its stderr (for diagnostics)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # something outside the group still holds the pipes: the
        proc.kill()  # grader must return anyway, so stop reading them instead of waiting on it
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        err = b"(the sandbox's pipes stayed open after it was killed)"
    return (err or b"").decode(errors="replace")


