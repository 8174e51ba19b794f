"""Kernel-level walls for the code under test, standard library only (``runner.py`` imports it
and, under bubblewrap, these two files are all of the project that is visible): a seccomp filter
refusing the system calls a solution has no business making, and a Landlock ruleset confining its
file access. ``runner`` applies both in each forked test child, before the code runs."""
from __future__ import annotations

import errno
import fcntl
import os
import platform
import signal
import stat
import struct
import sys


# ------------------------------------------------------------------ seccomp (kernel-level refusals)
# System calls refused to the code under test, per architecture: (AUDIT_ARCH value, refused numbers,
# numbers of the calls allowed only with some arguments). Refused: new processes (fork bombs),
# execve (shells escape the audit hook), sockets, signals by pid or pidfd (the runner and the grader
# are not the code's to kill), leaving the process group, raising limits, io_uring (it performs
# file and socket operations this filter never sees), memfd (memory outside RLIMIT_AS), the kernel
# keyring, and what root (rlimits mode run as root keeps its capabilities) could do to the whole
# machine from Python without an audit event: set the clock, take real-time priority, read the
# kernel log, mount, load modules, open files by handle.
_SYSCALLS = {
    "x86_64": (0xC000003E, dict(
        fork=57, vfork=58, clone3=435, execve=59, execveat=322, socket=41, kill=62, tkill=200,
        rt_sigqueueinfo=129, pidfd_open=434, pidfd_send_signal=424, pidfd_getfd=438, ptrace=101,
        process_vm_readv=310, process_vm_writev=311, process_madvise=440, kcmp=312, setsid=112,
        setpgid=109, setrlimit=160, memfd_create=319, userfaultfd=323, io_uring_setup=425,
        io_uring_enter=426, io_uring_register=427, add_key=248, request_key=249, keyctl=250,
        mount=165, umount2=166, pivot_root=155, chroot=161, unshare=272, setns=308, reboot=169,
        init_module=175, finit_module=313, delete_module=176, kexec_load=246, kexec_file_load=320,
        bpf=321, perf_event_open=298, mknod=133, mknodat=259, open_tree=428, move_mount=429,
        fsopen=430, fsmount=432, mount_setattr=442, swapon=167, swapoff=168, sethostname=170,
        setdomainname=171, settimeofday=164, clock_settime=227, clock_adjtime=305, adjtimex=159,
        setpriority=141, sched_setscheduler=144, sched_setparam=142, sched_setattr=314, ioprio_set=251,
        migrate_pages=256, move_pages=279, syslog=103, acct=163, quotactl=179, iopl=172, ioperm=173,
        vhangup=153, name_to_handle_at=303, open_by_handle_at=304, fanotify_init=300, lookup_dcookie=212),
        dict(clone=56, tgkill=234, rt_tgsigqueueinfo=297, prlimit64=302, prctl=157, ioctl=16)),
    "aarch64": (0xC00000B7, dict(
        clone3=435, execve=221, execveat=281, socket=198, kill=129, tkill=130, rt_sigqueueinfo=138,
        pidfd_open=434, pidfd_send_signal=424, pidfd_getfd=438, ptrace=117, process_vm_readv=270,
        process_vm_writev=271, process_madvise=440, kcmp=272, setsid=157, setpgid=154, setrlimit=164,
        memfd_create=279, userfaultfd=282, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, add_key=217, request_key=218, keyctl=219, mount=40, umount2=39,
        pivot_root=41, chroot=51, unshare=97, setns=268, reboot=142, init_module=105,
        finit_module=273, delete_module=106, kexec_load=104, kexec_file_load=294, bpf=280,
        perf_event_open=241, mknodat=33, open_tree=428, move_mount=429, fsopen=430, fsmount=432,
        mount_setattr=442, swapon=224, swapoff=225, sethostname=161, setdomainname=162,
        settimeofday=170, clock_settime=112, clock_adjtime=266, adjtimex=171, setpriority=140,
        sched_setscheduler=119, sched_setparam=118, sched_setattr=274, ioprio_set=30, migrate_pages=238,
        move_pages=239, syslog=116, acct=89, quotactl=60, vhangup=58, name_to_handle_at=264,
        open_by_handle_at=265, fanotify_init=262, lookup_dcookie=18),
        dict(clone=220, tgkill=131, rt_tgsigqueueinfo=240, prlimit64=261, prctl=167, ioctl=29)),
}
_CLONE_THREAD, _PR_SET_PDEATHSIG = 0x00010000, 1
# FS_IOC_SETFLAGS (and its 32-bit form), FS_IOC_FSSETXATTR: chattr +i as root would leave
# undeletable files behind in the working directory.
_IOCTLS_REFUSED = (0x40086602, 0x40046602, 0x401C5820)


def seccomp_program(pid: int | None = None) -> bytes | None:
    """The classic-BPF filter as bytes (8 bytes per instruction), or None on an unknown platform.

    ``pid`` is the process the filter is for: signals from tgkill (``raise``, ``abort``,
    ``signal.pthread_kill``) may target only it; without it they are refused too.
    """
    entry = _SYSCALLS.get(platform.machine()) if sys.platform.startswith("linux") else None
    if entry is None:
        return None
    arch, refused, checked = entry
    allow, refuse = 0x7FFF0000, 0x00050000  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | errno
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, JMP|JEQ/JGE/JSET|K, RET|K
    code: list[bytes] = []

    def op(opcode: int, k: int, jt: int = 0, jf: int = 0) -> None:
        code.append(struct.pack("=HBBI", opcode, jt, jf, k))

    def arg(index: int, high: bool = False) -> int:  # offset of a 32-bit half of seccomp_data.args[i]
        return 16 + 8 * index + 4 * high  # both architectures here are little-endian

    op(ld, 4)  # seccomp_data.arch: any other ABI (e.g. 32-bit int 0x80) gets nothing at all
    op(jeq, arch, 1, 0)
    op(ret, refuse | errno.EPERM)
    op(ld, 0)  # seccomp_data.nr
    if platform.machine() == "x86_64":  # the x32 ABI numbers syscalls from 0x40000000
        op(jge, 0x40000000, 0, 1)
        op(ret, refuse | errno.EPERM)
    for name, number in refused.items():
        action = {"fork": errno.EAGAIN, "vfork": errno.EAGAIN, "clone3": errno.ENOSYS}.get(name, errno.EPERM)
        op(jeq, number, 0, 1)  # ENOSYS for clone3 makes glibc fall back to clone (threads)
        op(ret, refuse | action)
    # Each block below ends in a return on every path, so the next one still sees nr loaded.
    blocks = {
        # clone: only with CLONE_THREAD (a thread); anything else is a new process
        "clone": [(ld, arg(0)), (jset, _CLONE_THREAD, 0, 1), (ret, allow), (ret, refuse | errno.EAGAIN)],
        # prlimit64: reading limits (new_limit NULL) only, never raising them or touching others'
        "prlimit64": [(ld, arg(2)), (jeq, 0, 0, 3), (ld, arg(2, True)), (jeq, 0, 0, 1), (ret, allow),
                      (ret, refuse | errno.EPERM)],
        # prctl: everything but clearing the parent-death signal (which would outlive the runner)
        "prctl": [(ld, arg(0)), (jeq, _PR_SET_PDEATHSIG, 0, 1), (ret, refuse | errno.EPERM), (ret, allow)],
        "ioctl": [(ld, arg(1)), *[(jeq, cmd, len(_IOCTLS_REFUSED) - i, 0) for i, cmd in enumerate(_IOCTLS_REFUSED)],
                  (ret, allow), (ret, refuse | errno.EPERM)],
    }
    for name in ("tgkill", "rt_tgsigqueueinfo"):  # the target thread group must be this process
        blocks[name] = [(ret, refuse | errno.EPERM)] if pid is None else \
            [(ld, arg(0)), (jeq, pid, 0, 1), (ret, allow), (ret, refuse | errno.EPERM)]
    for name, body in blocks.items():
        op(jeq, checked[name], 0, len(body))
        for instruction in body:
            op(*instruction)
    op(ret, allow)
    return b"".join(code)


def _kernel_helpers():
    """(install_seccomp, set_parent_death_signal, libc), prepared before forking; None where
    unavailable. ``install_seccomp(pid=os.getpid())`` builds the filter for the calling process."""
    try:
        import ctypes  # noqa: PLC0415 (only the runner uses it; the code under test may not)

        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        return None, None, None

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    def prctl(*args) -> None:
        if libc.prctl(*args) != 0:
            raise OSError(ctypes.get_errno(), f"prctl{args[:2]} failed")

    def install(pid: int | None = None) -> None:
        program = seccomp_program(os.getpid() if pid is None else pid)
        buffer = ctypes.create_string_buffer(program, len(program))
        fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
        prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: required to install a filter unprivileged
        prctl(22, 2, ctypes.byref(fprog), 0, 0)  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER

    death = lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # noqa: E731
    return (install if seccomp_program() is not None else None), death, libc


# ------------------------------------------------------------------ Landlock (kernel-level file access)
# Landlock (Linux 5.13+, unprivileged) confines the test child's file access in the kernel: read
# only the system libraries, the Python installation and the working directory, write only the
# working directory. It is what keeps host files safe in rlimits mode, where the audit hook alone
# would be Python-level (and a second wall under bubblewrap). Its ptrace scoping also hides other
# processes' /proc entries (environ, mem, fd). The syscall numbers are the same on every architecture.
_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446
_LL = dict(execute=1 << 0, write_file=1 << 1, read_file=1 << 2, read_dir=1 << 3, remove_dir=1 << 4,
           remove_file=1 << 5, make_char=1 << 6, make_dir=1 << 7, make_reg=1 << 8, make_sock=1 << 9,
           make_fifo=1 << 10, make_block=1 << 11, make_sym=1 << 12, refer=1 << 13, truncate=1 << 14)
_LL_FILE = _LL["execute"] | _LL["write_file"] | _LL["read_file"] | _LL["truncate"]  # rights a file rule may hold
LL_READ = _LL["read_file"] | _LL["read_dir"]
LL_WRITE = LL_READ | _LL["write_file"] | _LL["truncate"] | _LL["remove_dir"] | _LL["remove_file"] \
    | _LL["make_dir"] | _LL["make_reg"] | _LL["refer"]  # no symlinks, devices, fifos, sockets
# Besides the Python installation: what the dynamic loader, time zones and locales need.
SYSTEM_READABLE = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache", "/etc/localtime",
                   "/dev/zero", "/dev/urandom", "/dev/random")


def landlock_abi(libc=None) -> int:
    """The Landlock ABI version this kernel offers; 0 where it has none or it is disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        import ctypes  # noqa: PLC0415

        libc = libc or ctypes.CDLL(None, use_errno=True)
        version = libc.syscall(ctypes.c_long(_LL_CREATE), None, ctypes.c_long(0), ctypes.c_long(1))
    except (ImportError, OSError, AttributeError):
        return 0
    return max(int(version), 0)


def landlock_ruleset(libc, rules: list[tuple[str, int]]) -> int:
    """A Landlock ruleset fd allowing only ``rules`` ((path, rights) pairs; paths that do not exist
    are skipped), numbered above the descriptors a test child sets up. Raises OSError if refused."""
    import ctypes  # noqa: PLC0415

    abi = landlock_abi(libc)
    if abi < 1:
        raise OSError(errno.EOPNOTSUPP, "Landlock is not available")
    handled = (1 << 13) - 1 | (_LL["refer"] if abi >= 2 else 0) | (_LL["truncate"] if abi >= 3 else 0)

    def call(number: int, *args) -> int:
        result = libc.syscall(ctypes.c_long(number), *args)
        if result < 0:
            raise OSError(ctypes.get_errno(), f"landlock syscall {number} failed")
        return result

    attr = ctypes.create_string_buffer(struct.pack("=Q", handled), 8)  # landlock_ruleset_attr
    ruleset = call(_LL_CREATE, attr, ctypes.c_long(8), ctypes.c_long(0))
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    rights &= _LL_FILE
                rule = ctypes.create_string_buffer(struct.pack("=Qi", rights & handled, fd), 12)
                call(_LL_ADD_RULE, ctypes.c_long(ruleset), ctypes.c_long(1), rule, ctypes.c_long(0))
            finally:
                os.close(fd)
        high = fcntl.fcntl(ruleset, fcntl.F_DUPFD_CLOEXEC, 100)  # out of the way of fds 0-3
    finally:
        os.close(ruleset)
    return high


def landlock_restrict(libc, ruleset: int) -> None:
    """Confine the calling process (and its threads created later) to ``ruleset``, for good."""
    import ctypes  # noqa: PLC0415

    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, required unprivileged
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if libc.syscall(ctypes.c_long(_LL_RESTRICT), ctypes.c_long(ruleset), ctypes.c_long(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
