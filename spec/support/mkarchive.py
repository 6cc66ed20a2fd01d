#!/usr/bin/python3
"""Build an archive from a JSON description, hostile entries included.

usage: mkarchive.py OUT FORMAT < entries.json
FORMAT: tar, tar.gz, tar.xz, zip
entries.json: [{"name": "a/b", "type": "file"|"dir"|"symlink"|"hardlink"|"chardev",
                "data": "...", "mode": 493, "link": "target"}, ...]
Names are written exactly as given (tar's own tools would sanitise them).
"""
import io
import json
import sys
import tarfile
import time
import zipfile

TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chardev": tarfile.CHRTYPE,
}


def build_tar(out, mode, entries):
    with tarfile.open(out, mode, format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e["name"])
            info.type = TYPES[e.get("type", "file")]
            info.mode = e.get("mode", 0o755 if info.type == tarfile.DIRTYPE else 0o644)
            info.mtime = int(time.time())
            info.linkname = e.get("link", "")
            data = e.get("data", "").encode()
            if info.type == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


def build_zip(out, entries):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for e in entries:
            kind = e.get("type", "file")
            info = zipfile.ZipInfo(e["name"] + ("/" if kind == "dir" else ""))
            info.create_system = 3  # unix, so the mode bits are read
            if kind == "dir":
                info.external_attr = (0o040000 | e.get("mode", 0o755)) << 16 | 0x10
                z.writestr(info, "")
            elif kind == "symlink":
                info.external_attr = (0o120000 | 0o777) << 16
                z.writestr(info, e["link"])
            else:
                info.external_attr = (0o100000 | e.get("mode", 0o644)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, e.get("data", ""))


def main():
    out, fmt = sys.argv[1], sys.argv[2]
    entries = json.load(sys.stdin)
    if fmt == "zip":
        build_zip(out, entries)
    else:
        build_tar(out, {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[fmt], entries)


if __name__ == "__main__":
    main()
