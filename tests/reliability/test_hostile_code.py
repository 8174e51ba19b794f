"""Hostile programs against the code sandbox (issue 11): each must end in a clean verdict, the
grader must survive and return within bounded time, nothing outside the sandbox may change, no
secret of the grader's environment may be seen, and no process may be left behind.

Every program runs under each sandbox path available here: ``rlimits`` (no bwrap: Landlock, seccomp
and the audit hook), ``hook-only`` (rlimits with Landlock turned off, as on a kernel without it: the
file, secret and disarming programs then meet the audit hook alone) and ``bubblewrap`` when bwrap
works on this machine. Limits are short (1 s, 512 MB, 1 MB of output) because the machine is shared.
After each program: marker files the test planted in the temp folder, the project folder and the
home folder are byte-identical, no file named ``pmd-pwned*`` appeared there, the sandbox's host
folder is gone, and no process is left: this test process is made a child subreaper, so even a
process that left its session would be re-parented here and seen.
"""
from __future__ import annotations

import ctypes
import dis
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import psutil
import pytest

from tasks.livecodebench import runner, sandbox
from tasks.livecodebench.sandbox import Limits, run_tests

REPO = Path(__file__).resolve().parents[2]
BWRAP = "variant" in sandbox._probe_bwrap()
VARIANTS = ["rlimits", "hook-only"] + (["bubblewrap"] if BWRAP else [])
SECRETS = {"OPENAI_API_KEY": "sk-hostile-" + uuid.uuid4().hex, "HF_TOKEN": "hf_hostile" + uuid.uuid4().hex,
           "AWS_SECRET_ACCESS_KEY": "aws-" + uuid.uuid4().hex, "PMD_HOSTILE_SECRET": "marker-" + uuid.uuid4().hex}
MARKER_TEXT = "marker file content " + uuid.uuid4().hex  # must never show up in what a program prints
STDIN, EXPECTED = "3\n1 2 3\n", "6"


@dataclass(frozen=True)
class Hostile:
    """One hostile program: ``expect`` holds the acceptable verdicts; ``files`` marks the programs
    that the audit hook alone must also stop (they run in the ``hook-only`` variant too)."""

    name: str
    code: str
    expect: frozenset
    files: bool = False
    limits: dict = field(default_factory=dict)
    inputs: int = 1
    detail: str = ""  # what the last run's error text must contain


def hostile(name: str, code: str, *expect: str, files: bool = False, inputs: int = 1, detail: str = "",
            **limits) -> Hostile:
    return Hostile(name, textwrap.dedent(code).strip() + "\n", frozenset(expect), files, limits, inputs, detail)


def attempts(code: str) -> str:
    """``code`` after the ``attempt`` helper below."""
    return ATTEMPTS + textwrap.dedent(code)


TIMEOUT, ERROR, WRONG, MEMORY, OUTPUT = "time-out", "runtime error", "wrong answer", "memory limit", "output limit"

# Programs that try several things print "LEAK ..." / "DONE ..." for each one that worked and
# "blocked ..." otherwise, then end normally: a wrong answer whose output is then inspected.
ATTEMPTS = """
import os
def attempt(label, action):
    try:
        result = action()
        print("LEAK" if label.startswith("read") else "DONE", label, repr(result)[:200])
    except BaseException as err:
        print("blocked", label, type(err).__name__)
"""

PROGRAMS = [
    # ---------------------------------------------------------------- outliving the time limit
    hostile("ignore_timeout_signals", """
        import signal
        for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            pass
        """, TIMEOUT),
    hostile("rearming_signal_handlers", """
        import signal
        def survive(signum, frame):
            signal.signal(signum, survive)
        for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGXCPU, signal.SIGVTALRM):
            signal.signal(sig, survive)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        while True:
            pass
        """, TIMEOUT),
    hostile("block_every_signal", """
        import signal
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            pass
        """, TIMEOUT),
    hostile("stop_itself", "import signal\nsignal.raise_signal(signal.SIGSTOP)\nprint(6)", TIMEOUT),
    hostile("sleep_past_the_limit", "import time\ntime.sleep(60)\nprint(6)", TIMEOUT),
    hostile("busy_threads", """
        import threading
        def spin():
            while True:
                pass
        for _ in range(4):
            threading.Thread(target=spin).start()
        """, TIMEOUT),
    hostile("thread_bomb", """
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        """, ERROR, MEMORY, TIMEOUT),
    hostile("infinite_recursion", """
        import sys
        sys.setrecursionlimit(10 ** 9)
        def down(n):
            return down(n + 1) + 1
        down(0)
        """, ERROR, MEMORY, TIMEOUT),
    # ---------------------------------------------------------------- killing the parent, escaping the group
    hostile("kill_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint(6)", ERROR),
    hostile("kill_grader", "import os, signal\nos.kill($grader, signal.SIGKILL)\nprint(6)", ERROR),
    hostile("killpg_own_group", "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)\nprint(6)", ERROR),
    hostile("kill_group_zero", "import os, signal\nos.kill(0, signal.SIGKILL)\nprint(6)", ERROR),
    hostile("pidfd_kill_parent", """
        import os, signal
        signal.pidfd_send_signal(os.pidfd_open(os.getppid()), signal.SIGKILL)
        print(6)
        """, ERROR),
    # Invalid values, so that a sandbox that let them through changes nothing on this machine: the
    # refusal (EPERM) comes before the kernel's own check of the value (EINVAL).
    hostile("set_the_machine_clock", "import time\ntime.clock_settime(time.CLOCK_REALTIME, -1.0)", ERROR,
            detail="Operation not permitted"),
    hostile("real_time_priority", """
        import os
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1000))
        while True:
            pass
        """, ERROR, detail="Operation not permitted"),
    hostile("leave_the_process_group", "import os, time\nos.setsid()\ntime.sleep(60)", ERROR),
    # ---------------------------------------------------------------- new processes
    hostile("fork_bomb", "import os\nwhile True:\n    os.fork()", ERROR),
    hostile("multiprocessing_pool", """
        import multiprocessing, time
        for _ in range(8):
            multiprocessing.Process(target=time.sleep, args=(60,)).start()
        """, ERROR),
    hostile("shell_via_os_system", "import os\nos.system('sleep 60 & echo x > /tmp/pmd-pwned-shell')\nprint(6)", ERROR),
    hostile("shell_via_subprocess", "import subprocess\nsubprocess.Popen(['/bin/sh', '-c', 'sleep 60 &'])\nprint(6)", ERROR),
    hostile("shell_via_execv", "import os\nos.execv('/bin/sh', ['sh', '-c', 'sleep 60'])", ERROR),
    hostile("shell_via_posix_spawn", "import os\nos.posix_spawn('/bin/sh', ['sh', '-c', 'sleep 60'], {})", ERROR),
    # ---------------------------------------------------------------- memory
    hostile("memory_bomb", "blocks = []\nwhile True:\n    blocks.append(b'x' * (16 << 20))", MEMORY, time_s=4.0),
    hostile("one_huge_allocation", "x = bytearray(1 << 40)", MEMORY),
    hostile("huge_anonymous_mmap", "import mmap\nm = mmap.mmap(-1, 1 << 40)\nm[-1] = 1", ERROR, MEMORY),
    hostile("memfd_outside_the_address_space_limit", """
        import os
        fd = os.memfd_create('hoard')
        os.ftruncate(fd, 1 << 30)
        os.write(fd, b'x' * (1 << 20))
        """, ERROR),
    # ---------------------------------------------------------------- output and descriptors
    hostile("huge_stdout", "import sys\nwhile True:\n    sys.stdout.write('6' * 65536)", OUTPUT),
    hostile("huge_stderr", "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)", OUTPUT, ERROR),
    hostile("one_huge_line", "print('6' * (8 << 20))", OUTPUT),
    hostile("close_stdout", "import os\nos.close(1)\nprint(6)", ERROR),
    hostile("close_every_descriptor", "import os\nos.closerange(0, 1 << 16)\nprint(6)", ERROR),
    hostile("exhaust_descriptors_with_pipes", "import os\nkeep = []\nwhile True:\n    keep.append(os.pipe())", ERROR),
    hostile("exhaust_descriptors_with_files", "keep = [open('/dev/null') for _ in range(100000)]", ERROR),
    hostile("fake_protocol_lines", """
        import json
        for i in range(3):
            print(json.dumps({"index": i, "status": "ok", "output": "6\\n", "detail": "", "seconds": 0}))
        """, WRONG, inputs=3),
    hostile("write_into_the_runner_pipe", """
        import os
        fd = os.open(f'/proc/{os.getppid()}/fd/1', os.O_WRONLY)
        os.write(fd, b'{"index": 0, "status": "ok", "output": "6", "detail": "", "seconds": 0}\\n')
        """, ERROR, files=True),
    # ---------------------------------------------------------------- files outside the working folder
    hostile("read_outside_files", attempts("""
        import glob, linecache, pathlib
        for name, path in [("tmp", $tmp_marker), ("project", $project_marker), ("home", $home_marker)]:
            attempt("read open " + name, lambda: open(path).read())
            attempt("read os.open " + name, lambda: os.read(os.open(path, os.O_RDONLY), 100))
            attempt("read pathlib " + name, lambda: pathlib.Path(path).read_text())
            attempt("read linecache " + name, lambda: linecache.getline(path, 1) or 1 / 0)
            attempt("read relative " + name, lambda: open("../" * 40 + path.lstrip("/")).read())
            attempt("read proc cwd " + name, lambda: open("/proc/self/cwd/" + "../" * 40 + path.lstrip("/")).read())
            attempt("read dir_fd " + name, lambda: os.read(os.open(os.path.basename(path), os.O_RDONLY,
                                                                     dir_fd=os.open(os.path.dirname(path), os.O_RDONLY)), 100))
        for folder in ($project, $home, $tmp, "/"):
            attempt("read listdir " + folder, lambda: os.listdir(folder))
            attempt("read scandir " + folder, lambda: [e.name for e in os.scandir(folder)])
            attempt("read glob " + folder, lambda: glob.glob(folder + "/*") or 1 / 0)
        attempt("read project module", lambda: __import__("tasks.livecodebench.loader"))
        """), WRONG, files=True),
    hostile("write_delete_outside_files", attempts("""
        import pathlib, shutil, tempfile
        for name, path in [("tmp", $tmp_marker), ("project", $project_marker), ("home", $home_marker)]:
            attempt("overwrite " + name, lambda: open(path, "w").write("pwned"))
            attempt("append " + name, lambda: open(path, "a").write("pwned"))
            attempt("os.open O_TRUNC " + name, lambda: os.open(path, os.O_WRONLY | os.O_TRUNC))
            attempt("remove " + name, lambda: os.remove(path))
            attempt("rename " + name, lambda: os.rename(path, "stolen"))
            attempt("replace " + name, lambda: os.replace(path, path + ".pmd-pwned"))
            attempt("truncate " + name, lambda: os.truncate(path, 0))
            attempt("chmod " + name, lambda: os.chmod(path, 0))
            attempt("utime " + name, lambda: os.utime(path, (0, 0)))
            attempt("shutil.move " + name, lambda: shutil.move(path, "."))
            attempt("rmtree " + name, lambda: shutil.rmtree(os.path.dirname(path)) if name == "tmp" else 1 / 0)
            attempt("hard link " + name, lambda: (os.link(path, "hard"), open("hard", "w").write("pwned")))
            attempt("symlink " + name, lambda: (os.symlink(path, "soft"), open("soft", "w").write("pwned")))
        for folder in ($project, $home, $tmp, os.path.expanduser("~")):
            attempt("create in " + folder, lambda: open(os.path.join(folder, "pmd-pwned-file"), "w").write("x"))
            attempt("mkdir in " + folder, lambda: os.mkdir(os.path.join(folder, "pmd-pwned-dir")))
            attempt("pathlib in " + folder, lambda: pathlib.Path(folder, "pmd-pwned-pathlib").write_text("x"))
            attempt("mkstemp in " + folder, lambda: tempfile.mkstemp(dir=folder, prefix="pmd-pwned-"))
            attempt("relative into " + folder, lambda: open("../" * 40 + folder.lstrip("/") + "/pmd-pwned-rel", "w"))
        attempt("inside the working folder", lambda: open("inside.txt", "w").write("fine"))
        """), WRONG, files=True),
    hostile("write_outside_plainly", "open($project + '/pmd-pwned-plain', 'w').write('x')\nprint(6)", ERROR, files=True),
    hostile("delete_outside_plainly", "import os\nos.remove($tmp_marker)\nprint(6)", ERROR, files=True),
    hostile("fill_the_disk", """
        for i in range(64):
            with open(f"blob{i}", "wb") as out:
                out.write(b"x" * (1 << 20))
        print(6)
        """, ERROR, files=True, disk_mb=8),
    hostile("millions_of_files", "import os\nfor i in range(10 ** 6):\n    open(str(i), 'w').close()", ERROR, TIMEOUT,
            files=True, time_s=2.0),
    hostile("unreadable_leftovers", """
        import os
        print(len(os.listdir(".")))
        os.makedirs("a/b")
        open("a/b/f", "w").write("x")
        os.chmod("a/b", 0)
        os.chmod("a", 0)
        os.chmod(".", 0)
        """, WRONG, files=True, inputs=2),
    # ---------------------------------------------------------------- disarming the audit hook
    hostile("patch_realpath_and_builtins", """
        import builtins, os, posixpath
        here = os.getcwd()
        posixpath.realpath = os.path.realpath = lambda path, **kw: here
        posixpath.abspath = os.path.abspath = lambda path: here
        builtins.any = lambda items: True
        builtins.isinstance = lambda obj, cls: False
        os.getcwd = lambda: "/"
        open($tmp_marker, "w").write("pwned")
        """, ERROR, files=True),
    hostile("patch_the_runner_globals", """
        import sys
        runner = sys.modules["__main__"]
        for name in ("_DENY", "_WRITES"):
            getattr(runner, name).clear()
        runner._DENY_PREFIXES = ()
        runner._READS = ()
        runner._OPEN_WRITE = 0
        runner._inside = lambda path, roots: True
        runner._canonical = lambda path, dir_fd, tools: "/"
        os = __import__("os")
        os.remove($tmp_marker)
        """, ERROR, files=True),
    hostile("rewrite_the_hook_through_a_traceback", """
        try:
            open("/etc/passwd")
        except PermissionError as err:  # the innermost frame of its traceback is the hook's
            tb = err.__traceback__
            while tb.tb_next:
                tb = tb.tb_next
            for value in list(tb.tb_frame.f_locals.values()):
                names = getattr(getattr(value, "__code__", None), "co_freevars", ())
                for name, cell in zip(names, getattr(value, "__closure__", None) or ()):
                    if name in ("writable", "readable"):  # "/" as the only root lets everything through
                        cell.cell_contents = ("/",)
                if getattr(value, "__name__", "") in ("inside", "_inside"):
                    try:
                        value.__code__ = (lambda path, roots: True).__code__
                    except PermissionError:
                        pass
        open($tmp_marker, "w").write("pwned")
        """, ERROR, files=True),
    hostile("find_the_hook_with_gc", "import gc\nhooks = [o for o in gc.get_objects() if callable(o)]\nprint(6)", ERROR,
            files=True),
    hostile("trace_the_hook", "import sys\nsys.settrace(lambda *args: None)\nprint(6)", ERROR, files=True),
    hostile("ctypes_prctl", "import ctypes\nctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\nprint(6)", ERROR, files=True),
    hostile("code_object_surgery", "f = lambda: 0\ng = f.__code__.replace(co_consts=(6,))\nprint(6)", ERROR, files=True),
    hostile("shape_shifting_path", """
        import os
        class Shifty:  # the call asks first (the marker), the audit hook second (a harmless name)
            calls = 0
            def __fspath__(self):
                Shifty.calls += 1
                return $tmp_marker if Shifty.calls % 2 else "inside.txt"
        os.write(os.open(Shifty(), os.O_WRONLY | os.O_TRUNC), b"pwned")
        """, ERROR, files=True),
    # ---------------------------------------------------------------- secrets
    hostile("read_the_environment", attempts("""
        print(sorted(os.environ.items()))
        attempt("read own environ", lambda: open("/proc/self/environ").read())
        attempt("read parent environ", lambda: open(f"/proc/{os.getppid()}/environ").read())
        attempt("read grader environ", lambda: open(f"/proc/{$grader}/environ").read())
        attempt("read init environ", lambda: open("/proc/1/environ").read())
        attempt("read parent memory", lambda: open(f"/proc/{os.getppid()}/mem", "rb").read(1))
        """), WRONG, files=True),
]


# ------------------------------------------------------------------ fixtures: markers, no leftovers
@dataclass
class Host:
    """What the programs must leave alone: marker files (path -> sha256) and folders to watch."""

    markers: dict
    folders: list
    outside: Path

    def values(self) -> dict:
        home = self.markers.get("home", (Path.home() / "pmd-absent",))[0]
        return {"tmp_marker": repr(str(self.markers["tmp"][0])), "project_marker": repr(str(self.markers["project"][0])),
                "home_marker": repr(str(home)), "project": repr(str(REPO)), "home": repr(str(Path.home())),
                "tmp": repr(tempfile.gettempdir()), "grader": str(os.getpid())}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def host(tmp_path):
    """Plant marker files in a temp folder, the project folder and the home folder (afresh for
    each program, so one that got through does not fail the others too)."""
    token = uuid.uuid4().hex[:12]
    outside = tmp_path / "outside"
    outside.mkdir()
    markers = {"tmp": outside / "marker.txt", "project": REPO / f".pmd-hostile-marker-{token}",
               "home": Path.home() / f".pmd-hostile-marker-{token}"}
    for name, path in list(markers.items()):
        try:
            path.write_text(MARKER_TEXT)
        except OSError:  # an unwritable home folder: nothing there to protect
            del markers[name]
    folders = [outside, REPO, Path.home(), Path(tempfile.gettempdir()), Path.cwd()]
    yield Host({name: (path, _sha(path)) for name, path in markers.items()}, folders, outside)
    for path in markers.values():
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    """Make this process the child subreaper, so a process that leaves the runner's session is
    re-parented here (and listed among our children) instead of escaping to init unseen."""
    libc = ctypes.CDLL(None, use_errno=True)
    armed = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    yield
    if armed:
        libc.prctl(36, 0, 0, 0, 0)


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    """Secrets in the grader's environment, which no program may see."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


def assert_no_process_left() -> None:
    """No child of this process alive after a grace period; re-parented zombies are reaped."""
    deadline = time.monotonic() + 5
    while True:
        alive = []
        for child in psutil.Process().children(recursive=True):
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(child.pid, os.WNOHANG)
                else:
                    alive.append((child.pid, child.name(), child.cmdline()[:4]))
            except (psutil.NoSuchProcess, ChildProcessError):
                pass
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert alive == [], f"processes left behind: {alive}"


def assert_host_untouched(host: Host) -> None:
    for name, (path, digest) in host.markers.items():
        assert path.exists() and _sha(path) == digest, f"the {name} marker {path} was changed or removed"
    assert sorted(p.name for p in host.outside.iterdir()) == ["marker.txt"]
    for folder in host.folders:
        pwned = sorted(folder.glob("pmd-pwned*")) + sorted(folder.glob(".pmd-pwned*"))
        assert pwned == [], f"created outside the sandbox: {pwned}"


# ------------------------------------------------------------------ running one program
def verdict(run: sandbox.TestRun) -> str:
    """The verifier's category for a run of a program whose expected output is ``EXPECTED``."""
    if run.status == "ok":
        return "passed" if run.output.strip() == EXPECTED else WRONG
    return {"timeout": TIMEOUT, "error": ERROR, "memory": MEMORY, "output_limit": OUTPUT}.get(run.status, run.status)


def run_hostile(program: Hostile, variant: str, host: Host, monkeypatch) -> list[sandbox.TestRun]:
    """Run ``program`` under ``variant``; check the grader's time, the host folder, the markers,
    the secrets and the processes around it. Returns the runs."""
    if variant == "hook-only":
        monkeypatch.setenv(sandbox.LANDLOCK_VAR, "0")
    made = []
    real_mkdtemp = sandbox.tempfile.mkdtemp
    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1])
    limits = Limits(**{"time_s": 1.0, "memory_mb": 512, "output_bytes": 1 << 20, **program.limits})
    code = Template(program.code).substitute(host.values())
    start = time.monotonic()
    runs = run_tests(code, [STDIN] * program.inputs, limits=limits, mode="bubblewrap" if variant == "bubblewrap" else "rlimits")
    elapsed = time.monotonic() - start
    assert elapsed < program.inputs * (limits.time_s + 1) + 10, f"the grader took {elapsed:.1f} s"
    assert_no_process_left()
    assert_host_untouched(host)
    assert made and not os.path.exists(made[0]), "the sandbox's host folder was left behind"
    shown = "".join(run.output + run.detail for run in runs)
    for secret in [*SECRETS.values(), MARKER_TEXT]:
        assert secret not in shown, "a secret reached the program"
    return runs


CASES = [pytest.param(p, v, id=f"{v}-{p.name}") for p in PROGRAMS for v in VARIANTS if p.files or v != "hook-only"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("program,variant", CASES)
def test_hostile_program(program: Hostile, variant: str, host: Host, monkeypatch):
    runs = run_hostile(program, variant, host, monkeypatch)
    got = [verdict(run) for run in runs]
    assert got and set(got) <= program.expect, f"{program.name}: {got} {[r.detail[-300:] for r in runs]}"
    assert "crashed" not in got
    assert program.detail in runs[-1].detail, runs[-1].detail
    for run in runs:  # a "DONE"/"LEAK" line is an attempt that worked
        done = [line for line in run.output.splitlines() if line.startswith(("DONE", "LEAK"))]
        assert all(line.startswith("DONE inside the working folder") for line in done), done
    if program.name == "write_delete_outside_files":
        assert "DONE inside the working folder" in runs[0].output  # the working folder stays usable
    if program.name == "unreadable_leftovers":  # each test starts in an empty working folder
        assert [run.output.strip() for run in runs] == ["0", "0"]
    if program.name == "fake_protocol_lines":  # printed lines are output, not results
        assert len(runs) == 3 and all(run.output.count('"status": "ok"') == 3 for run in runs)


def test_the_catalogue_covers_the_issue():
    """At least 25 hostile programs, every verdict category among them."""
    assert len(PROGRAMS) >= 25
    assert {TIMEOUT, ERROR, WRONG, MEMORY, OUTPUT} <= set().union(*(p.expect for p in PROGRAMS))


# ------------------------------------------------------------------ each wall on its own
def _probe(script: str) -> list[str]:
    """Run ``script`` in a fresh interpreter at the repository root; its stdout lines."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=30, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_landlock_alone_confines_files(host: Host, tmp_path):
    """The kernel layer without the audit hook: what stops code that gets past Python."""
    if runner.landlock_abi() < 1:
        pytest.skip("this kernel has no Landlock")
    work = tmp_path / "work"
    work.mkdir()
    script = f"""
        import os
        from tasks.livecodebench import runner
        libc = runner._kernel_helpers()[2]
        rules = [(p, runner.LL_READ) for p in runner.SYSTEM_READABLE] + [({str(work)!r}, runner.LL_WRITE)]
        runner.landlock_restrict(libc, runner.landlock_ruleset(libc, rules))
        def attempt(label, action):
            try:
                action()
                print(label + ":allowed")
            except OSError as err:
                print(label + ":" + str(err.errno))
        attempt("read-marker", lambda: open({str(host.markers['tmp'][0])!r}).read())
        attempt("write-outside", lambda: open({str(tmp_path / 'pmd-pwned-landlock')!r}, "w"))
        attempt("parent-environ", lambda: open(f"/proc/{{os.getppid()}}/environ").read())
        attempt("symlink-inside", lambda: os.symlink("/etc", {str(work / 'link')!r}))
        attempt("write-inside", lambda: open({str(work / 'ok.txt')!r}, "w").write("x"))
        attempt("read-system", lambda: open("/etc/ld.so.cache", "rb").read(1))
    """
    out = _probe(script)
    assert out == ["read-marker:13", "write-outside:13", "parent-environ:13", "symlink-inside:13",
                   "write-inside:allowed", "read-system:allowed"], out
    assert not (tmp_path / "pmd-pwned-landlock").exists()


def test_seccomp_refuses_signals_to_others_and_leaving_the_group():
    """The new seccomp refusals, without the audit hook: pidfds, setsid, memfd, raising limits,
    clearing the parent-death signal, the clock and real-time priority (root in rlimits mode);
    signals to the process itself still work."""
    if runner.seccomp_program() is None:
        pytest.skip("no seccomp filter for this platform")
    script = """
        import os, resource, signal, time
        from tasks.livecodebench import runner
        helpers = runner._kernel_helpers()
        libc = helpers[2]
        helpers[0]()
        def attempt(label, action):
            try:
                action()
                print(label + ":allowed")
            except (OSError, ValueError) as err:  # setrlimit's EPERM comes as ValueError
                print(label + ":" + str(getattr(err, "errno", "refused")))
        attempt("pidfd_open", lambda: os.pidfd_open(os.getppid()))
        attempt("setsid", os.setsid)
        attempt("memfd", lambda: os.memfd_create("x"))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        attempt("setrlimit", lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard)))
        print("pdeathsig:" + str(libc.prctl(1, 0, 0, 0, 0)))
        # Invalid values: refused by seccomp gives EPERM, reaching the kernel's checks EINVAL.
        attempt("clock_settime", lambda: time.clock_settime(time.CLOCK_REALTIME, -1.0))
        attempt("sched_setscheduler", lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1000)))
        attempt("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, 0, 19))
        seen = []
        signal.signal(signal.SIGUSR1, lambda *a: seen.append(1))
        signal.raise_signal(signal.SIGUSR1)
        print("self-signal:" + str(len(seen)))
    """
    assert _probe(script) == ["pidfd_open:1", "setsid:1", "memfd:1", "setrlimit:refused", "pdeathsig:-1",
                              "clock_settime:1", "sched_setscheduler:1", "setpriority:1", "self-signal:1"]


def test_the_audit_hook_reads_no_globals_and_has_no_cells():
    """What the code under test can rebind (module globals, builtins) or reach from a traceback
    (closure cells) must play no part in the hook's decisions."""
    hook = runner._audit_hook("/tmp/work", ("/usr",))
    for function in (hook, runner._canonical, runner._inside):
        loads = [i.argval for i in dis.get_instructions(function) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF")]
        assert loads == [] and function.__closure__ is None, (function.__name__, loads)


def test_a_cpu_kill_is_a_time_out():
    """Code that ignores SIGXCPU runs on to the hard CPU limit (SIGKILL): a time-out, not memory."""
    limits = {"time_s": 1.0, "memory_mb": 512, "output_bytes": 100, "disk_mb": 8}
    assert runner._classify(signal.SIGKILL, None, 3.0, limits, 0, "")[0] == "timeout"
    assert runner._classify(signal.SIGKILL, None, 0.2, limits, 0, "")[0] == "memory"
    assert runner._classify(0, "disk", 0.1, limits, 0, "")[1].startswith("Disk limit exceeded")


def test_a_garbled_result_line_is_a_crash_not_an_exception():
    """The grader survives whatever comes down the runner's pipe."""
    assert sandbox._parse(b'{"ready": true}', 0) is None
    assert sandbox._parse(b'{"index": 0, "status": "ok", "output": "6"}', 0).status == "ok"
    for line in (b"not json", b"[1, 2]", b'{"index": 0, "bogus": 1}', b'{"index": 5, "status": "ok"}'):
        assert sandbox._parse(line, 0).status == "crashed", line
