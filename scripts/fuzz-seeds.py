#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/TARGET/ and their
dictionaries into fuzz/dict/TARGET.dict, from testdata/ and badgers/ plus a few inputs made
here (layers aimed at the symlinks the unpack target plants, nested indexes, references,
WWW-Authenticate headers). Deterministic; run by scripts/fuzz.sh before each run, and
harmless to rerun: libFuzzer adds its own finds beside the seeds.

Input formats are those of src/fuzzing.rs: the unpack target's first byte is the mode
(bit 0 rootless; (byte >> 1) % 3: 0 plain, 1 gzip-compressed by the target, 2 two layers
split at the little-endian u16 that follows); the layout target's documents are separated
by NUL bytes, index.json first, with $dN / $sN standing for document N's digest and size.
"""
import glob
import io
import os
import tarfile

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CORPUS = os.path.join(REPO, "fuzz", "corpus")
DICT = os.path.join(REPO, "fuzz", "dict")
MTIME = 1_600_000_000


def seed(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(CORPUS, target, "seed-" + name), "wb") as f:
        f.write(data)


def dictionary(target, tokens):
    os.makedirs(DICT, exist_ok=True)
    with open(os.path.join(DICT, target + ".dict"), "w") as f:
        for token in tokens:
            escaped = "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else "\\x%02x" % b
                              for b in token.encode("latin-1"))
            f.write('"%s"\n' % escaped)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tar_bytes(entries, fmt=tarfile.USTAR_FORMAT):
    """entries: (name, kind, data or link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mtime = MTIME
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            data = None
            if kind == tarfile.REGTYPE:
                info.size = len(extra)
                data = io.BytesIO(extra)
            elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = extra
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
            tar.addfile(info, data)
    return buf.getvalue()


def unpack_seeds():
    reg, sym, lnk, dir_ = tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE
    layers = {os.path.basename(p): read(p) for p in sorted(glob.glob(os.path.join(REPO, "testdata/layer/*")))}
    made = {
        "through-up.tar": tar_bytes([("up/x", reg, b"x")]),
        "through-abs.tar": tar_bytes([("abs/x", reg, b"x")]),
        "hardlink-secret.tar": tar_bytes([("h", lnk, "abs/secret")]),
        "replace-up.tar": tar_bytes([("up", dir_, None), ("up/x", reg, b"x")]),
        "chain.tar": tar_bytes([("a", sym, "b"), ("b", sym, "up"), ("a/x", reg, b"x")]),
        "tree.tar": tar_bytes(
            [("etc", dir_, None), ("etc/passwd", reg, b"root:x:0:0::/root:/bin/sh\n"),
             ("bin", dir_, None), ("bin/sh", reg, b"\x7fELF"), ("bin/ash", lnk, "bin/sh"),
             ("usr", dir_, None), ("usr/bin", sym, "../bin"), ("dev", dir_, None),
             ("dev/null", tarfile.CHRTYPE, None), ("tmp", dir_, None), ("fifo", tarfile.FIFOTYPE, None)]),
        "whiteouts.tar": tar_bytes(
            [("etc", dir_, None), ("etc/.wh.passwd", reg, b""), ("bin/.wh..wh..opq", reg, b""),
             (".wh.up", reg, b""), ("usr/.wh.bin", reg, b"")]),
        "pax-long.tar": tar_bytes([("d/" + "n" * 200, reg, b"long"), ("l", sym, "/" + "t" * 120)], tarfile.PAX_FORMAT),
        "gnu-long.tar": tar_bytes([("g/" + "m" * 150, reg, b"gnu")], tarfile.GNU_FORMAT),
    }
    layers.update(made)
    for name, data in layers.items():
        seed("unpack_layer", "plain-" + name, b"\x00" + data)
        seed("unpack_layer", "rootless-" + name, b"\x01" + data)
        if not name.endswith(".gz"):
            seed("unpack_layer", "gzip-" + name, b"\x02" + data)
    for first, second in [("planted-layer1.tar", "planted-layer2.tar"), ("tree.tar", "whiteouts.tar"),
                          ("chain.tar", "through-up.tar")]:
        a, b = layers[first], layers[second]
        seed("unpack_layer", "two-%s-%s" % (first, second), b"\x04" + len(a).to_bytes(2, "little") + a + b)
    dictionary("unpack_layer", ["ustar\x0000", "ustar  \x00", ".wh.", ".wh..wh..opq", "../", "up/", "abs/",
                                "path=", "linkpath=", "size=", "SCHILY.xattr.", "user.rootlesscontainers",
                                "GNU.sparse.", "\x1f\x8b\x08", "\x28\xb5\x2f\xfd"])


def manifest_seeds():
    # Files only: testdata/apps also holds whole apps (folders) for the build tests.
    for path in sorted(p for p in glob.glob(os.path.join(REPO, "testdata/apps/*")) if os.path.isfile(p)):
        seed("app_file", os.path.basename(path), read(path))
    seed("app_file", "minimal.yaml", "name: a\nbadger: shell\nsource: {repository: ./}\n")
    seed("app_file", "flags.yaml", "name: a\nlanguagepack: docker://h:5000/b/p:1\nsource: {artifact: a.tar}\n"
         "ports: [1, 65535]\nenvironment: {A_1: 'x'}\nscaling: {min: 0, max: 0}\n")
    dictionary("app_file", ["version", "name", "description", "languagepack", "badger", "badgers", "source",
                            "repository", "revision", "artifact", "workflow_config", "run_cmd", "test_cmd",
                            "trigger_actions", "ports", "port", "protocol", "tcp", "udp", "sctp", "environment",
                            "services", "type", "scaling", "min", "max", "url", "flavor", "security_flavor",
                            "restricted", "unrestricted", "x-", ": ", "- ", "&a ", "*a", "!!str ", "{", "}",
                            "[", "]", "\"", "'", "|\n", ">\n", "---\n", "...\n", "docker://", "oci:"])
    for path in sorted(glob.glob(os.path.join(REPO, "testdata/badgers/*")) +
                       glob.glob(os.path.join(REPO, "badgers/*/badger.yaml"))):
        name = os.path.relpath(path, REPO).replace("/", "_")
        seed("badger_manifest", name, read(path))
    seed("badger_manifest", "annotation.json",
         '{"build":"/solum/bin/build.sh","depends":[],"environment":{"A":"1"},"from":"base/busybox",'
         '"name":"shell","network":"none","packages":[{"name":"sh"}],"version":"1","x-a":{"b":[1]}}')
    dictionary("badger_manifest", ["name", "version", "description", "from", "depends", "packages",
                                   "environment", "build", "setup", "network", "none", "host", "x-", ": ",
                                   "- ", "/solum/bin/build.sh", "../", "./", "{", "}", "[", "]"])


def reference_seeds():
    digest = "sha256:" + "a" * 64
    refs = ["helloworld", "badgers/python3:3.11", "base/busybox", "oci:/tmp/layout:badgers/python3:3.11",
            "oci:layout", "oci-archive:img.tar", "oci-archive:/x/img.tar:app:1", "docker-archive:out.tar:hello:1.0",
            "docker://127.0.0.1:5000/org/app:1.0@" + digest, "docker://localhost:5000/a/b",
            "docker://registry.example/x/y/z:latest", "docker://h/x@" + digest, "ftp://x/y", "../x", "-rf"]
    for i, ref in enumerate(refs):
        seed("image_reference", "%02d" % i, ref)
    dictionary("image_reference", ["docker://", "docker:", "oci:", "oci-archive:", "docker-archive:",
                                   "containers-storage:", "dir:", "sha256:", "@sha256:", ":", "/", "..", "@"])


def authenticate_seeds():
    headers = [
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:u/i:pull"',
        'Bearer realm="https://quay.io/v2/auth",service="quay.io"',
        'Bearer realm="http://127.0.0.1:5001/token", service="reg", scope="a,b"',
        'Basic realm="Registry Realm"',
        'bearer Realm=https://h/token , SERVICE="a\\"b\\\\c"',
        'Negotiate, Bearer realm="x"',
    ]
    for i, header in enumerate(headers):
        seed("www_authenticate", "%02d" % i, header)
    dictionary("www_authenticate", ["Bearer ", "Basic ", "realm=", "service=", "scope=", "\"", "\\", ","])


def layout_seeds():
    index, manifest, config = ("application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                               "application/vnd.oci.image.config.v1+json")
    docker_list, docker_manifest, docker_config = (
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.container.image.v1+json")
    name = '"annotations":{"org.opencontainers.image.ref.name":"%s"}'
    cfg = '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' % ("b" * 64)

    def man(mt, cmt, n):
        return ('{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"$d%d","size":$s%d},'
                '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$d%d","size":$s%d}]}'
                % (mt, cmt, n, n, n + 1, n + 1))

    simple = ['{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"$d1","size":$s1,%s}]}' % (manifest, name % "app:1"),
              man(manifest, config, 2), cfg, "layer"]
    nested = ['{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"$d1","size":$s1,%s}]}' % (index, name % "n"),
              '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"$d2","size":$s2,'
              '"platform":{"os":"linux","architecture":"arm64"}},{"mediaType":"%s","digest":"$d3","size":$s3,'
              '"platform":{"os":"linux","architecture":"amd64"}}]}' % (manifest, index),
              man(manifest, config, 5),
              '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"$d4","size":$s4}]}' % manifest,
              man(manifest, config, 5), cfg, "layer"]
    docker = ['{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"$d1","size":$s1,%s},'
              '{"mediaType":"%s","digest":"$d2","size":$s2,%s}]}' % (docker_list, name % "d:1", manifest, name % "o:1"),
              '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"$d3","size":$s3,'
              '"platform":{"os":"linux","architecture":"amd64"}}]}' % (docker_list, docker_manifest),
              man(manifest, config, 4), man(docker_manifest, docker_config, 4), cfg, "layer"]
    for label, docs in [("simple", simple), ("nested", nested), ("docker", docker)]:
        seed("layout_resolve", label, "\0".join(docs))
    dictionary("layout_resolve", [index, manifest, config, docker_list, docker_manifest, docker_config,
                                  "application/vnd.oci.image.layer.v1.tar", "org.opencontainers.image.ref.name",
                                  '"digest":"$d', '"size":$s', "platform", "architecture", "amd64", "linux",
                                  "variant", "manifests", "layers", "config", "mediaType", "schemaVersion", "\0"])


if __name__ == "__main__":
    unpack_seeds()
    manifest_seeds()
    reference_seeds()
    authenticate_seeds()
    layout_seeds()
