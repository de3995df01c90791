#!/usr/bin/env python3
"""Pushes a small runnable image (a static busybox, one layer) to a registry
over the Docker Registry HTTP API v2, with the Python standard library only.

    push_image.py REGISTRY REPO:TAG [--label TEXT] [--scheme http|https]

Prints the digest the registry now serves for the tag (Docker-Content-Digest
of a HEAD with every manifest type accepted). `--label` goes into the image
config, so each distinct label gives distinct content (a distinct config
digest, as containerd keys images) while the layer stays shared.
Needs /bin/busybox as a static binary (Debian: busybox-static); set BUSYBOX
to use another path. No authentication: meant for a test registry.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.error
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.v2+json",
])


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(busybox):
    """A reproducible gzip'd tar: /bin/busybox and a few applet links."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind, data=b"", link="", mode=0o755):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, mode, 0
            info.linkname = link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if data else None)
        add("bin", tarfile.DIRTYPE)
        with open(busybox, "rb") as f:
            add("bin/busybox", tarfile.REGTYPE, f.read())
        for applet in ["sh", "sleep", "true", "cat", "ls"]:
            add("bin/" + applet, tarfile.SYMTYPE, link="busybox", mode=0o777)
        add("tmp", tarfile.DIRTYPE, mode=0o1777)
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(tar_bytes)
    return tar_bytes, gz.getvalue()


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def push_blob(base, repo, data):
    d = digest(data)
    status, _, _ = request("HEAD", f"{base}/v2/{repo}/blobs/{d}")
    if status == 200:
        return d
    status, headers, body = request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    if status != 202:
        sys.exit(f"push_image: starting an upload to {repo}: HTTP {status} {body[:200]!r}")
    location = headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    status, _, body = request("PUT", f"{location}{sep}digest={d}", data=data,
                              headers={"Content-Type": "application/octet-stream"})
    if status != 201:
        sys.exit(f"push_image: uploading {d} to {repo}: HTTP {status} {body[:200]!r}")
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("registry")
    ap.add_argument("reference", help="REPO:TAG")
    ap.add_argument("--label", default="")
    ap.add_argument("--scheme", default="http", choices=["http", "https"])
    args = ap.parse_args()
    repo, _, tag = args.reference.rpartition(":")
    if not repo or "/" in tag:
        sys.exit(f"push_image: {args.reference!r} is not REPO:TAG")
    base = f"{args.scheme}://{args.registry}"
    busybox = os.environ.get("BUSYBOX", "/bin/busybox")
    if not os.path.isfile(busybox):
        sys.exit(f"push_image: {busybox} not found (install busybox-static or set BUSYBOX)")
    tar_bytes, gz = layer(busybox)
    config = json.dumps({
        "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Labels": {"e2e.imagedrift.io/content": args.label,
                                                  "e2e.imagedrift.io/repository": repo}},
        "rootfs": {"type": "layers", "diff_ids": [digest(tar_bytes)]},
    }, sort_keys=True).encode()
    layer_digest = push_blob(base, repo, gz)
    config_digest = push_blob(base, repo, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": len(gz)}],
    }, sort_keys=True).encode()
    status, _, body = request("PUT", f"{base}/v2/{repo}/manifests/{tag}", data=manifest,
                              headers={"Content-Type": OCI_MANIFEST})
    if status != 201:
        sys.exit(f"push_image: pushing the manifest of {args.reference}: HTTP {status} {body[:200]!r}")
    status, headers, _ = request("HEAD", f"{base}/v2/{repo}/manifests/{tag}",
                                 headers={"Accept": ACCEPT})
    served = headers.get("Docker-Content-Digest", "") if status == 200 else ""
    if served != digest(manifest):
        sys.exit(f"push_image: the registry serves {served!r} for {args.reference}, "
                 f"not the pushed {digest(manifest)}")
    print(served)


if __name__ == "__main__":
    main()
