"""The child side of the code sandbox: a standalone, stdlib-only script that confines itself, then runs a program.

`boundary.verify.code` starts it as `python -I _sandbox.py IN_FD OUT_FD LIMITS_JSON` in a new
session (own process group), inside a fresh temporary directory, with stdout/stderr going to a file
there. Before reading the untrusted program it sets its resource limits (CPU time, address space,
file size, process count, no core dumps), leaves the network (a new network namespace when the OS
allows it) and, when started as root, drops to the `nobody` user so it cannot write outside its
directory. As root it first enters a PID namespace and a mount namespace (`_namespaces`): every
process the program starts dies with the sandbox, and /tmp, /var/tmp and /dev/shm are private and
empty. It reports what it achieved ({"isolation": [...]}), then speaks newline-delimited JSON over
the two pipe descriptors:

- mode "call": the program is executed once; each request names a function (`f` or `Class.method`,
  the class instantiated per call) and a list of argument lists; one reply line per call holds
  its result *as data* (`encode`) or the exception it raised.
- mode "script": each request gives an input file and an output file; a forked child runs the whole
  program as `__main__` with those as fd 0 and fd 1; the reply is its exit status.

Nothing the child says is trusted: results travel as plain data and are compared by the parent,
against expected values the child never sees, so a program that exits early, prints a success
marker or patches builtins/`__eq__` gains nothing. This module also holds the data codec, which the
parent imports to decode replies into genuine builtin objects.
"""
import base64
import hashlib
import json
import os
import sys

MAX_DEPTH = 100  # deeper nesting is sent as unencodable (and compares unequal)
DIGEST_OVER = 4 << 20  # a result whose encoding is longer travels as its SHA-256 (exact comparison only)
_SMALL = 1 << 62  # ints within +-_SMALL travel as JSON numbers, larger ones as hex (no digit limit)


def _scalar(x) -> bool:
    t = type(x)
    return t is str or t is bool or x is None or (t is int and -_SMALL < x < _SMALL) or \
        (t is float and x - x == 0.0)


def encode(x, depth: int = 0, canonical: bool = False):
    """A JSON-able form of a value made of builtin types: lists, strings, small ints, finite floats,
    bools and None as themselves; the rest as one-key tags {"t": tuple items}, {"d": [[k, v], ...]},
    {"S"/"F": set items}, {"i": hex}, {"f": "nan"}, {"c": [re, im]}, {"y": base64}, {"?": type name}.

    Subclasses of builtin types (Counter, OrderedDict, namedtuple, IntEnum, ...) travel as their
    base type's data, so whatever `__eq__` they define is left behind in the sandbox.
    """
    if _scalar(x):
        return x
    if depth > MAX_DEPTH:
        return {"?": "too deeply nested"}
    if type(x) is list and all(map(_scalar, x)):
        return x
    if type(x) is tuple and all(map(_scalar, x)):
        return {"t": list(x)}
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        x = int(x)
        return x if -_SMALL < x < _SMALL else {"i": hex(x)}
    if isinstance(x, float):
        x = float(x)
        return x if x - x == 0.0 else {"f": float.__repr__(x)}
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, complex):
        return {"c": [float.__repr__(x.real), float.__repr__(x.imag)]}
    if isinstance(x, (bytes, bytearray)):
        return {"y": base64.b64encode(bytes(x)).decode()}
    if isinstance(x, dict):
        items = [[encode(k, depth + 1, canonical), encode(v, depth + 1, canonical)] for k, v in dict.items(x)]
        if canonical:  # equal dicts in any insertion order encode alike (digests depend on it)
            items.sort(key=json.dumps)
        return {"d": items}
    for kind, tag in ((list, ""), (tuple, "t"), (set, "S"), (frozenset, "F")):
        if isinstance(x, kind):
            items = [encode(v, depth + 1, canonical) for v in kind.__iter__(x)]
            if tag in ("S", "F"):
                items.sort(key=json.dumps)
            return {tag: items} if tag else items
    if type(x).__module__ == "numpy" and hasattr(x, "tolist"):  # numpy scalars and arrays, as evalplus accepts
        return encode(x.tolist(), depth, canonical)
    return {"?": f"{type(x).__module__}.{type(x).__qualname__}"}


class Unencodable:
    """Stands for a value the child could not send as data; equal to nothing."""

    def __init__(self, what: str):
        self.what = what

    def __eq__(self, other):
        return False

    def __hash__(self):
        return hash(self.what)

    def __repr__(self):
        return f"<unencodable {self.what}>"


class Digest:
    """Stands for a result too large to send: equal only to a Digest of an equal value."""

    def __init__(self, sha: str):
        self.sha = sha

    def __eq__(self, other):
        return isinstance(other, Digest) and other.sha == self.sha

    def __hash__(self):
        return hash(self.sha)

    def __repr__(self):
        return f"<digest {self.sha[:12]}>"


def _untag(d: dict):
    """json.loads object_hook: a tagged object to its value (inner values are already decoded)."""
    if len(d) != 1:
        return d  # a message envelope
    (tag, v), = d.items()
    if tag == "t":
        return tuple(v)
    if tag == "d":
        return {k: val for k, val in v}
    if tag == "S":
        return set(v)
    if tag == "F":
        return frozenset(v)
    if tag == "i":
        return int(v, 16)
    if tag == "f":
        return float(v)
    if tag == "c":
        return complex(float(v[0]), float(v[1]))
    if tag == "y":
        return base64.b64decode(v)
    if tag == "?":
        return Unencodable(str(v))
    if tag == "#":
        return Digest(str(v))
    return d  # an untagged dict inside a message (the envelope): left as is


def loads(text: str | bytes):
    """Parse a message, turning every tagged value into genuine builtin objects."""
    return json.loads(text, object_hook=_untag)


# ---------------------------------------------------------------- the child process

def _processes_of(uid: int) -> int:
    """How many processes (threads count too, for RLIMIT_NPROC) the user runs now."""
    n = 0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except OSError:
            continue
        lines = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if lines.get("Uid", "").split()[:1] == [str(uid)]:
            n += int(lines.get("Threads", "1").strip() or 1)
    return n


# Linux constants (sched.h, mount.h, prctl.h): the namespaces and mounts `_namespaces` asks for.
CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER = 0x00020000, 0x20000000, 0x40000000, 0x10000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG = 1
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # the world-writable places a program could leave files in
PRIVATE_SIZE = b"size=64m,mode=1777"  # each private temp dir: a small tmpfs, gone with the namespace


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.unshare.argtypes = [ctypes.c_int]
    return libc


def _relay(pid: int) -> None:
    """The process outside the PID namespace: wait for its PID 1 and end as it ended (exit status,
    or the same signal, so the parent tells a CPU-limit kill from a crash); never returns."""
    import resource
    import signal

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL cannot be handled: it is already the default
            pass
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def _private_tmp(libc, proc: bool) -> bool:
    """In a new mount namespace: an empty private tmpfs on each of PRIVATE_DIRS, the sandbox directory
    (the working directory, usually under /tmp) bound back at its own path, and (`proc`) a /proc
    of the new PID namespace. True when every temp dir is private."""
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:  # our mounts stay ours
        return False
    cwd = os.getcwd()
    mounted = [d for d in PRIVATE_DIRS if os.path.isdir(d) and not os.path.islink(d)
               and libc.mount(b"tmpfs", d.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, PRIVATE_SIZE) == 0]
    ok = len(mounted) == sum(os.path.isdir(d) and not os.path.islink(d) for d in PRIVATE_DIRS)
    if any(cwd == d or cwd.startswith(d + "/") for d in mounted):
        os.makedirs(cwd, exist_ok=True)  # in the new tmpfs; "." below still names the real directory
        ok = libc.mount(b".", cwd.encode(), None, MS_BIND, None) == 0 and ok
        os.chdir(cwd)
    if proc:  # only this namespace's processes show (and /proc/self/fd, used after dropping root, works)
        libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    return ok


def _namespaces(in_fd: int, out_fd: int) -> list[str]:
    """As root: a new PID namespace and mount namespace. This process forks: the parent stays outside
    and relays the end of its child (`_relay`), the child becomes PID 1 of the namespace and runs on,
    so every process the program starts (new sessions, double forks, ignored signals) is killed by
    the kernel when the sandbox ends; and the program sees private, empty temp dirs (`_private_tmp`).
    Returns what was achieved (in the child only). Not root, or a kernel that refuses: [] (the parent
    then kills the process group and every process carrying the sandbox's token, and says so)."""
    if os.geteuid() != 0:
        return []
    libc = _libc()
    if libc.unshare(CLONE_NEWPID | CLONE_NEWNS) != 0:
        if libc.unshare(CLONE_NEWNS) == 0 and _private_tmp(libc, proc=False):
            return ["private-tmp"]
        return []
    pid = os.fork()
    if pid:
        os.close(in_fd)  # the pipes are the child's: the parent sees their end when the child ends
        os.close(out_fd)
        _relay(pid)
    return ["pid-namespace"] + (["private-tmp"] if _private_tmp(libc, proc=True) else [])


def _confine(limits: dict) -> list[str]:
    """Apply limits, leave the network, drop root; return what isolation was achieved."""
    import ctypes
    import resource

    done = []
    cpu = int(limits["cpu_s"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    done.append("rlimits")
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newuser, clone_newnet = 0x10000000, 0x40000000
    net = os.geteuid() == 0 and libc.unshare(clone_newnet) == 0
    if os.geteuid() == 0:
        # Keep the import path readable after the drop (a root-only /root/.pyenv, say): open each
        # folder now and import through /proc/self/fd/N, which skips the checks on its ancestors.
        fds = {p: os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in sys.path if os.path.isdir(p)}
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)  # nobody: cannot write outside the world-writable sandbox directory
        libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: else /proc/self/fd belongs to root
        def moved(path: str) -> str:
            for p in sorted(fds, key=len, reverse=True):
                if path == p or path.startswith(p + os.sep):
                    return f"/proc/self/fd/{fds[p]}" + path[len(p):]
            return path
        sys.path[:] = [moved(p) for p in sys.path]
        for module in list(sys.modules.values()):  # packages already imported (collections, ...)
            if isinstance(getattr(module, "__path__", None), list):
                module.__path__[:] = [moved(p) for p in module.__path__]
        sys.path_importer_cache.clear()
        done.append("nobody")
    # RLIMIT_NPROC counts all processes of the user: as nobody that is the sandboxes; otherwise add
    # what the user already runs, so the sandbox itself may still fork `processes` times.
    allowed = limits["processes"] + (0 if "nobody" in done else _processes_of(os.getuid()))
    resource.setrlimit(resource.RLIMIT_NPROC, (allowed, allowed))
    if not net:  # an unprivileged user may still get a network namespace inside a user namespace
        net = libc.unshare(clone_newuser | clone_newnet) == 0
    if net:
        done.append("no-network")
    return done


def _send(fd: int, msg: dict) -> None:
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _resolve(ns: dict, name: str):
    """The callable `name` (`f`, or `Class.method` on a fresh instance) in the program's namespace."""
    head, _, method = name.partition(".")
    obj = ns[head]
    return getattr(obj(), method) if method else obj


def _call(ns: dict, name: str, args: list) -> dict:
    """One call of the program's function: {"value": data} or {"raised": "Type: message"}."""
    try:
        encoded = encode(_resolve(ns, name)(*args), canonical=True)
        sha, size = hashlib.sha256(), 0
        for chunk in json.JSONEncoder().iterencode(encoded):  # streamed: no second copy of a huge result
            sha.update(chunk.encode())
            size += len(chunk)
        return {"value": {"#": sha.hexdigest()} if size > DIGEST_OVER else encoded}
    except BaseException as e:  # noqa: BLE001 (SystemExit too: the call failed)
        try:
            return {"raised": f"{type(e).__name__}: {str(e)[:300]}"}
        except BaseException:  # noqa: BLE001 (an exception whose str() fails)
            return {"raised": "Exception: (unprintable)"}


def _serve_calls(ns: dict, lines, out_fd: int) -> None:
    for line in lines:
        req = loads(line)
        if "names" in req:
            found = []  # [name, kind, detail]: a list, since a dict keyed by names could look like a tag
            for name in req["names"]:
                if name not in ns:
                    continue
                elif isinstance(ns[name], type(os)):
                    found.append([name, "module", ns[name].__name__])
                elif callable(ns[name]):
                    found.append([name, "callable", None])
                else:
                    found.append([name, "value", encode(ns[name])])
            _send(out_fd, {"names": found})
            continue
        for args in req["args_list"]:  # one line per call, so memory stays bounded by the largest result
            reply = _call(ns, req["call"], args)
            sys.stdout.flush()
            try:
                _send(out_fd, reply)
            except (MemoryError, ValueError, RecursionError) as e:
                _send(out_fd, {"raised": f"{type(e).__name__}: the result could not be sent"})


def _serve_script(code, lines, out_fd: int) -> None:
    for line in lines:
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            rc = 0
            try:
                i = os.open(req["stdin"], os.O_RDONLY)
                o = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(i, 0)
                os.dup2(o, 1)
                sys.stdin = open(0, "r", closefd=False)
                sys.stdout = open(1, "w", closefd=False)
                exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException as e:  # noqa: BLE001
                print(f"{type(e).__name__}: {e}", file=sys.stderr)
                rc = 1
            try:
                sys.stdout.flush()
            finally:
                os._exit(rc)
        _, status = os.waitpid(pid, 0)
        _send(out_fd, {"exit": os.waitstatus_to_exitcode(status)})


def main() -> None:
    in_fd, out_fd, limits = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    spaces = _namespaces(in_fd, out_fd)
    isolation = _confine(limits) + spaces
    if "pid-namespace" in spaces:  # set after dropping root (a change of user clears it)
        import signal

        _libc().prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # PID 1 dies with its relay, and with it the namespace
    _send(out_fd, {"isolation": isolation})  # before the program is read: every verdict can name it
    lines = os.fdopen(in_fd, "r")
    first = json.loads(lines.readline())
    try:
        code = compile(first["program"], "<program>", "exec")
        if first["mode"] == "call":
            ns = {"__name__": "__candidate__", "__builtins__": __builtins__}
            exec(code, ns)
    except BaseException as e:  # noqa: BLE001 (a syntax error, a crash or an exit while loading)
        _send(out_fd, {"ready": False, "error": f"{type(e).__name__}: {str(e)[:300]}"})
        return
    _send(out_fd, {"ready": True})
    if first["mode"] == "call":
        _serve_calls(ns, lines, out_fd)
    else:
        _serve_script(code, lines, out_fd)


if __name__ == "__main__":
    main()
