"""Writes the generated package's __init__.py, re-exporting every message,
enum and client stub of proto/skypilot/v1, so that `skypilot_client.v1` offers
them by name.

Usage: write_v1_init.py SKYPILOT_DESCRIPTOR_SET OUTPUT
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List

from google.protobuf import descriptor_pb2


def imports(module: str, names: List[str]) -> List[str]:
    return [f"from {module} import (  # noqa: F401"] + [f"    {name}," for name in names] + [")"]


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    files = descriptor_pb2.FileDescriptorSet()
    with open(argv[1], "rb") as handle:
        files.ParseFromString(handle.read())
    owner: Dict[str, str] = {}
    lines = ['"""Generated from proto/skypilot/v1/*.proto by scripts/generate.sh: do not edit."""', ""]
    modules: List[str] = []
    exported: List[str] = []
    for file in sorted(files.file, key=lambda f: f.name):
        module = os.path.splitext(os.path.basename(file.name))[0] + "_pb2"
        modules += [module, module + "_grpc"]
        names = sorted([m.name for m in file.message_type] + [e.name for e in file.enum_type])
        stubs = sorted(f"{service.name}Stub" for service in file.service)
        for name in names + stubs:
            if name in owner:
                print(f"{name} is defined by both {owner[name]} and {file.name}", file=sys.stderr)
                return 1
            owner[name] = file.name
        lines += imports(f".{module}", names)
        if stubs:
            lines += imports(f".{module}_grpc", stubs)
        exported += names + stubs
    lines[2:2] = imports(".", modules)
    lines.append("")
    lines.append("__all__ = [")
    lines += [f'    "{name}",' for name in sorted(exported + modules)]
    lines.append("]")
    with open(argv[2], "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
