#!/usr/bin/env python3
"""Writes the hand-made hostile layer tarballs in testdata/layer/.

Each file is a layer that a safe unpacker must refuse. The tests in src/layer unpack them
into DIR/root next to a sentinel directory DIR/outside and check that nothing changed
outside the root. Run once from the repository root; the output is committed.
Deterministic: fixed mtimes, gzip header mtime 0.
"""
import gzip
import io
import os
import tarfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "layer")
MTIME = 1_600_000_000


def member(name, kind=tarfile.REGTYPE, data=b"", link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, data)
    return buf.getvalue()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    # A `..` component that climbs out of the root.
    write("dotdot.tar", tar_bytes([member("ok"), member("../outside/dotdot", data=b"pwned\n")]))
    # An absolute path: must not land at /solum-hostile-absolute on the host.
    write("absolute.tar", tar_bytes([member("/solum-hostile-absolute", data=b"pwned\n")]))
    # A symlink that climbs out, then a file written through it, in the same layer.
    write(
        "symlink-escape.tar",
        tar_bytes([
            member("escape", tarfile.SYMTYPE, link="../outside"),
            member("escape/pwned", data=b"pwned\n"),
        ]),
    )
    # The same split over two layers: the first plants the link (legal on its own),
    # the second writes through it.
    write("planted-layer1.tar", tar_bytes([member("etc", tarfile.DIRTYPE),
                                           member("etc/link", tarfile.SYMTYPE, link="../../outside")]))
    write("planted-layer2.tar", tar_bytes([member("etc/link/pwned", data=b"pwned\n")]))
    # Hardlinks whose target is outside the root: lexically, and through a symlink.
    write("hardlink-outside.tar", tar_bytes([member("stolen", tarfile.LNKTYPE, link="../outside/secret")]))
    write(
        "hardlink-via-symlink.tar",
        tar_bytes([
            member("up", tarfile.SYMTYPE, link="../outside"),
            member("stolen", tarfile.LNKTYPE, link="up/secret"),
        ]),
    )
    # A valid gzip layer cut in the middle.
    payload = bytes((i * 7919) % 251 for i in range(200_000))
    full = gzip.compress(tar_bytes([member("big", data=payload)]), mtime=0)
    write("truncated.tar.gz", full[: len(full) // 2])


if __name__ == "__main__":
    main()
