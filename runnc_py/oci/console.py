"""`process.terminal` with `--console-socket`: runc's protocol (runc docs/terminals.md).

The runtime makes a pseudo-terminal, connects to the engine's unix socket and sends the master
end as SCM_RIGHTS ancillary data, with the name of the file as the message bytes; the engine
then owns the master (resize, I/O). The container gets the slave as its controlling terminal and
as fds 0, 1 and 2.
"""

from __future__ import annotations

import fcntl
import os
import socket
import termios

from runnc_py.errors import RunncError


def open_pty() -> tuple[int, int]:
    """(master, slave), both close-on-exec in this process."""
    master, slave = os.openpty()
    for fd in (master, slave):
        os.set_inheritable(fd, False)
    return master, slave


def send_master(socket_path: str, master: int) -> None:
    """Send MASTER over the unix stream socket at SOCKET_PATH (runc's SendFd)."""
    where = f"--console-socket {socket_path}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(10)
        sock.connect(socket_path)
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as exc:
        raise RunncError(f"cannot send the console: {exc.strerror or exc}", where=where) from None
    finally:
        sock.close()


def become_terminal(slave: int) -> None:
    """In the container's init, after setsid(): SLAVE becomes the controlling tty and stdio."""
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
