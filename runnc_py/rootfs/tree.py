"""The merged view of a layer stack, and the rules that build it. Pure: effects go to a Sink.

`Applier.apply(member, ...)` applies one tar member of one layer in order: entries replace
what lower layers had at that path, `.wh.NAME` deletes a lower-layer entry, `.wh..wh..opq`
hides a directory's lower-layer children (image-spec layer.md). Whiteouts never hide what
their own layer adds, whatever the order inside the tar.

Paths given to the sink are *real*: every directory on them is a directory of this tree,
never a symlink. A member whose parent path goes through a symlink is resolved inside the
image (absolute targets from the image root, as the guest's kernel would), and refused if
resolution climbs above the root. So whatever the sink writes stays under its own root.
Every path the sink is given is checked against the image's depth and length limits first
(paths.check_path), and nothing here recurses: a layer may nest as deep as it likes and is
refused with one line, never with a RecursionError.
"""

from __future__ import annotations

import base64
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Protocol

from runnc_py.errors import RunncError
from runnc_py.rootfs.paths import (
    MAX_SYMLINK_TARGET,
    Action,
    DevicePolicy,
    check_device,
    check_path,
    classify,
    split_name,
)

MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS


@dataclass(eq=False)
class Inode:
    """One file of the image; hardlinked names share the object."""

    kind: str  # dir, file, symlink, fifo, char, block
    mode: int = 0o755  # permission bits, setuid/setgid/sticky included
    uid: int = 0
    gid: int = 0
    mtime: float = 0.0
    target: str = ""  # symlink target
    rdev: tuple[int, int] = (0, 0)
    xattrs: dict[str, bytes] = field(default_factory=dict)
    size: int = 0
    entries: dict[str, Entry] | None = None  # directories only
    implicit: bool = False  # a missing parent we created, not named by any member


@dataclass(eq=False)
class Entry:
    """A name in a directory: the inode it names and the layer that put it there."""

    inode: Inode
    layer: int


DataOpener = Callable[[], "IO[bytes] | None"]


class Sink(Protocol):
    """Where the applier's decisions land (a work directory, or nothing in unit tests)."""

    def mkdir(self, path: str) -> None: ...

    def write(self, path: str, size: int, data: DataOpener) -> None: ...

    def symlink(self, path: str, target: str) -> None: ...

    def link(self, path: str, existing: str) -> None: ...

    def special(self, path: str, inode: Inode) -> None: ...

    def remove(self, path: str, inode: Inode) -> None: ...


class NullSink:
    """A sink that records nothing: for validating or modelling a stack without writing."""

    def mkdir(self, path: str) -> None:
        pass

    def write(self, path: str, size: int, data: DataOpener) -> None:
        pass

    def symlink(self, path: str, target: str) -> None:
        pass

    def link(self, path: str, existing: str) -> None:
        pass

    def special(self, path: str, inode: Inode) -> None:
        pass

    def remove(self, path: str, inode: Inode) -> None:
        pass


def _join(parts: tuple[str, ...] | list[str], name: str | None = None) -> str:
    full = [*parts, name] if name is not None else list(parts)
    return "/".join(full)


def xattrs_of(member: tarfile.TarInfo) -> dict[str, bytes]:
    """Extended attributes from PAX headers (GNU tar/Docker `SCHILY.xattr.`, libarchive's)."""
    found: dict[str, bytes] = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            found[key[len("SCHILY.xattr.") :]] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            found[key[len("LIBARCHIVE.xattr.") :]] = base64.b64decode(value + "==")
    return found


class Tree:
    """The merged directory tree; the root is a directory that no layer can replace."""

    def __init__(self) -> None:
        self.root = Inode("dir", mode=0o755, entries={})

    def lookup(self, path: str) -> Inode | None:
        """The inode at a real path (no symlink following), or None."""
        node = self.root
        for name in (p for p in path.split("/") if p):
            if node.entries is None or name not in node.entries:
                return None
            node = node.entries[name].inode
        return node

    def walk(self) -> Iterator[tuple[str, Inode]]:
        """Every (real path, inode), children before their directory; root last as "".

        Iterative: a layer may nest directories deeper than Python's recursion limit.
        """
        stack: list[tuple[str, Inode, bool]] = [("", self.root, False)]
        while stack:
            path, node, expanded = stack.pop()
            if node.kind != "dir" or expanded:
                yield path, node
                continue
            stack.append((path, node, True))
            assert node.entries is not None
            for name, entry in sorted(node.entries.items(), reverse=True):
                stack.append((f"{path}/{name}" if path else name, entry.inode, False))


def _has_layer(node: Inode, layer: int) -> bool:
    """Whether `layer` put anything below directory `node`."""
    stack = [node]
    while stack:
        current = stack.pop()
        assert current.entries is not None
        for entry in current.entries.values():
            if entry.layer == layer:
                return True
            if entry.inode.kind == "dir":
                stack.append(entry.inode)
    return False


class Applier:
    """Applies layer members in order to a Tree, mirroring every change into a Sink."""

    def __init__(self, sink: Sink, devices: DevicePolicy = DevicePolicy.SAFE) -> None:
        self.tree = Tree()
        self.sink = sink
        self.devices = devices

    # -- path resolution -------------------------------------------------------------------

    def _resolve_dir(
        self, parts: tuple[str, ...], *, create: bool, layer: int, where: str
    ) -> tuple[tuple[str, ...], Inode] | None:
        """The directory `parts` names, following symlinks inside the image; its real path.

        Missing directories are created (as `tar` and containerd do) when `create` is set;
        otherwise a missing one gives None.
        """
        stack = list(reversed(parts))
        real: list[str] = []
        chain: list[Inode] = [self.tree.root]
        hops = 0
        while stack:
            name = stack.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not real:
                    raise RunncError(
                        f"path {_join(parts)!r} goes through a symlink that escapes the image root",
                        where=where,
                    )
                real.pop()
                chain.pop()
                continue
            current = chain[-1]
            assert current.entries is not None
            entry = current.entries.get(name)
            if entry is None:
                if not create:
                    return None
                check_path(_join(real, name), where=where)
                inode = Inode("dir", mode=0o755, entries={}, implicit=True)
                current.entries[name] = Entry(inode, layer)
                self.sink.mkdir(_join(real, name))
                real.append(name)
                chain.append(inode)
                continue
            node = entry.inode
            if node.kind == "symlink":
                hops += 1
                if hops > MAX_SYMLINK_HOPS or not node.target:
                    raise RunncError(
                        f"path {_join(parts)!r} goes through a symlink loop or empty symlink",
                        where=where,
                    )
                if node.target.startswith("/"):
                    real, chain = [], [self.tree.root]
                stack.extend(reversed(node.target.split("/")))
                continue
            if node.kind != "dir":
                raise RunncError(
                    f"path {_join(parts)!r}: {_join(real, name)!r} is not a directory",
                    where=where,
                )
            real.append(name)
            chain.append(node)
        return tuple(real), chain[-1]

    # -- removal ---------------------------------------------------------------------------

    def _drop(self, parent: Inode, real_parent: tuple[str, ...], name: str) -> None:
        assert parent.entries is not None
        entry = parent.entries.pop(name)
        self.sink.remove(_join(real_parent, name), entry.inode)

    def _remove_lower(
        self, parent: Inode, real_parent: tuple[str, ...], name: str, layer: int
    ) -> None:
        """Delete what lower layers put at parent/name, keeping what `layer` itself added.

        A worklist, not recursion: a directory holding this layer's entries is descended
        into, anything else of lower layers is dropped whole.
        """
        todo = [(parent, real_parent, name)]
        while todo:
            directory, real_dir, child = todo.pop()
            assert directory.entries is not None
            entry = directory.entries.get(child)
            if entry is None or entry.layer == layer:
                continue
            node = entry.inode
            if node.kind == "dir" and _has_layer(node, layer):
                assert node.entries is not None
                real = (*real_dir, child)
                todo.extend((node, real, grandchild) for grandchild in node.entries)
                continue
            self._drop(directory, real_dir, child)

    # -- members ---------------------------------------------------------------------------

    def _inode_of(self, member: tarfile.TarInfo, where: str) -> Inode:
        common = {
            "mode": member.mode & 0o7777,
            "uid": member.uid,
            "gid": member.gid,
            "mtime": float(member.mtime),
            "xattrs": xattrs_of(member),
        }
        if member.isdir():
            return Inode("dir", entries={}, **common)  # type: ignore[arg-type]
        if member.isreg():
            return Inode("file", size=member.size, **common)  # type: ignore[arg-type]
        if member.issym():
            if not member.linkname:
                raise RunncError("symlink with an empty target", where=where)
            if len(member.linkname.encode("utf-8", "surrogateescape")) > MAX_SYMLINK_TARGET:
                raise RunncError(
                    f"symlink target longer than {MAX_SYMLINK_TARGET} bytes", where=where
                )
            return Inode("symlink", target=member.linkname, **common)  # type: ignore[arg-type]
        if member.isfifo():
            return Inode("fifo", **common)  # type: ignore[arg-type]
        if member.ischr() or member.isblk():
            kind = "char" if member.ischr() else "block"
            check_device(kind, member.devmajor, member.devminor, self.devices, where=where)
            return Inode(kind, rdev=(member.devmajor, member.devminor), **common)  # type: ignore[arg-type]
        raise RunncError(f"unsupported tar member type {member.type!r}", where=where)

    def apply(self, member: tarfile.TarInfo, data: DataOpener, layer: int, where: str) -> None:
        """Apply one member of layer number `layer` (0 = bottom). `data` opens its bytes."""
        name = (
            member.name if len(member.name) <= 64 else member.name[:40] + "..." + member.name[-20:]
        )
        self._apply(member, data, layer, f"{where}: member {name!r}")

    def _apply(self, member: tarfile.TarInfo, data: DataOpener, layer: int, where: str) -> None:
        parts = split_name(member.name, where=where)
        if parts:
            # The name as given first (one line with its whole depth); symlinks on the way
            # may still change the real path, which is checked again where it is made.
            check_path(_join(parts), where=where)
        what = classify(parts)
        if what.action is Action.SKIP:
            return
        if what.action is Action.WHITEOUT:
            found = self._resolve_dir(what.parts[:-1], create=False, layer=layer, where=where)
            if found is not None:
                self._remove_lower(found[1], found[0], what.parts[-1], layer)
            return
        if what.action is Action.OPAQUE:
            found = self._resolve_dir(what.parts, create=True, layer=layer, where=where)
            assert found is not None
            real, directory = found
            assert directory.entries is not None
            for name in list(directory.entries):
                self._remove_lower(directory, real, name, layer)
            return
        if member.islnk():
            self._hardlink(member, parts, layer, where)
            return
        inode = self._inode_of(member, where)
        if not parts:
            if inode.kind != "dir":
                raise RunncError("the image root must be a directory", where=where)
            self._update_dir(self.tree.root, inode)
            return
        found = self._resolve_dir(parts[:-1], create=True, layer=layer, where=where)
        assert found is not None
        real_parent, parent = found
        assert parent.entries is not None
        name = parts[-1]
        path = _join(real_parent, name)
        check_path(path, where=where)
        existing = parent.entries.get(name)
        if inode.kind == "dir" and existing is not None and existing.inode.kind == "dir":
            self._update_dir(existing.inode, inode)
            existing.layer = layer
            return
        if existing is not None:
            self._drop(parent, real_parent, name)
        if inode.kind == "dir":
            self.sink.mkdir(path)
        elif inode.kind == "file":
            self.sink.write(path, inode.size, data)
        elif inode.kind == "symlink":
            self.sink.symlink(path, inode.target)
        else:
            self.sink.special(path, inode)
        parent.entries[name] = Entry(inode, layer)

    @staticmethod
    def _update_dir(existing: Inode, new: Inode) -> None:
        existing.mode, existing.uid, existing.gid = new.mode, new.uid, new.gid
        existing.mtime, existing.xattrs, existing.implicit = new.mtime, new.xattrs, False

    def _hardlink(
        self, member: tarfile.TarInfo, parts: tuple[str, ...], layer: int, where: str
    ) -> None:
        if not parts:
            raise RunncError("the image root cannot be a hardlink", where=where)
        target_parts = split_name(member.linkname, where=f"{where} (hardlink target)")
        if not target_parts:
            raise RunncError("hardlink to the image root", where=where)
        found = self._resolve_dir(target_parts[:-1], create=False, layer=layer, where=where)
        target_entry = None
        if found is not None:
            assert found[1].entries is not None
            target_entry = found[1].entries.get(target_parts[-1])
        if found is None or target_entry is None:
            raise RunncError(
                f"hardlink target {member.linkname!r} does not exist in this or a lower layer",
                where=where,
            )
        if target_entry.inode.kind == "dir":
            raise RunncError(f"hardlink to directory {member.linkname!r}", where=where)
        target_path = _join(found[0], target_parts[-1])
        parent_found = self._resolve_dir(parts[:-1], create=True, layer=layer, where=where)
        assert parent_found is not None
        real_parent, parent = parent_found
        assert parent.entries is not None
        name = parts[-1]
        check_path(_join(real_parent, name), where=where)
        existing = parent.entries.get(name)
        if existing is not None and existing.inode is target_entry.inode:
            existing.layer = layer
            return
        if existing is not None:
            if existing.inode.kind == "dir" and target_path.startswith(
                _join(real_parent, name) + "/"
            ):
                raise RunncError(
                    f"hardlink replaces the directory holding its own target {member.linkname!r}",
                    where=where,
                )
            self._drop(parent, real_parent, name)
        self.sink.link(_join(real_parent, name), target_path)
        parent.entries[name] = Entry(target_entry.inode, layer)
