"""Checks proto/google against the googleapis-common-protos package.

The generated skypilot.v1 modules import google.longrunning and google.rpc from
googleapis-common-protos, not from proto/google. This check makes sure that
swap is safe:

* every google/... file our protos import is registered by the package under
  the same descriptor file name, and every google.* type they reference exists;
* every message, field, enum and service method of the hand-written
  proto/google files exists in the package's definitions with the same number,
  name, type, label and oneof: the package may define more (newer fields),
  never something different.

Usage: check_google_protos.py GOOGLE_DESCRIPTOR_SET SKYPILOT_DESCRIPTOR_SET
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import List

from google.protobuf import descriptor_pb2, descriptor_pool

# Registering the package's modules in the default pool.
from google.longrunning import operations_pb2  # noqa: F401
from google.rpc import error_details_pb2, status_pb2  # noqa: F401

POOL = descriptor_pool.Default()
PREFIXES = ("google/longrunning/", "google/rpc/")


def load(path: str) -> descriptor_pb2.FileDescriptorSet:
    files = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as handle:
        files.ParseFromString(handle.read())
    return files


def theirs_file(name: str) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    POOL.FindFileByName(name).CopyToProto(proto)
    return proto


def compare_message(
    ours: descriptor_pb2.DescriptorProto,
    theirs: descriptor_pb2.DescriptorProto,
    scope: str,
    problems: List[str],
) -> None:
    full = f"{scope}.{ours.name}"
    by_number = {field.number: field for field in theirs.field}
    for field in ours.field:
        other = by_number.get(field.number)
        where = f"{full}.{field.name} (= {field.number})"
        if other is None:
            problems.append(f"{where}: missing in the package")
            continue
        for attribute in ("name", "type", "label", "type_name", "proto3_optional"):
            mine, its = getattr(field, attribute), getattr(other, attribute)
            if attribute == "type":
                mine, its = (descriptor_pb2.FieldDescriptorProto.Type.Name(v) for v in (mine, its))
            elif attribute == "label":
                mine, its = (descriptor_pb2.FieldDescriptorProto.Label.Name(v) for v in (mine, its))
            if mine != its:
                problems.append(f"{where}: {attribute} is {mine!r} here, {its!r} in the package")
        mine_oneof = ours.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else None
        its_oneof = theirs.oneof_decl[other.oneof_index].name if other.HasField("oneof_index") else None
        if mine_oneof != its_oneof:
            problems.append(f"{where}: oneof {mine_oneof!r} here, {its_oneof!r} in the package")
    nested = {message.name: message for message in theirs.nested_type}
    for message in ours.nested_type:
        if message.name not in nested:
            problems.append(f"{full}.{message.name}: missing in the package")
        else:
            compare_message(message, nested[message.name], full, problems)
    compare_enums(ours.enum_type, theirs.enum_type, full, problems)


def compare_enums(ours, theirs, scope: str, problems: List[str]) -> None:
    by_name = {enum.name: enum for enum in theirs}
    for enum in ours:
        other = by_name.get(enum.name)
        if other is None:
            problems.append(f"{scope}.{enum.name}: missing in the package")
            continue
        values = {value.number: value.name for value in other.value}
        for value in enum.value:
            if values.get(value.number) != value.name:
                problems.append(f"{scope}.{enum.name}.{value.name} (= {value.number}): differs in the package")


def compare_file(ours: descriptor_pb2.FileDescriptorProto, problems: List[str]) -> None:
    try:
        theirs = theirs_file(ours.name)
    except KeyError:
        problems.append(f"{ours.name}: the package registers no file of that name")
        return
    if ours.package != theirs.package:
        problems.append(f"{ours.name}: package {ours.package!r} here, {theirs.package!r} in the package")
    scope = ours.package
    messages = {message.name: message for message in theirs.message_type}
    for message in ours.message_type:
        if message.name not in messages:
            problems.append(f"{scope}.{message.name}: missing in {ours.name} of the package")
        else:
            compare_message(message, messages[message.name], scope, problems)
    compare_enums(ours.enum_type, theirs.enum_type, scope, problems)
    services = {service.name: service for service in theirs.service}
    for service in ours.service:
        other = services.get(service.name)
        if other is None:
            problems.append(f"{scope}.{service.name}: service missing in the package")
            continue
        methods = {method.name: method for method in other.method}
        for method in service.method:
            its = methods.get(method.name)
            where = f"{scope}.{service.name}/{method.name}"
            if its is None:
                problems.append(f"{where}: missing in the package")
                continue
            for attribute in ("input_type", "output_type", "client_streaming", "server_streaming"):
                if getattr(method, attribute) != getattr(its, attribute):
                    problems.append(f"{where}: {attribute} differs from the package")


def referenced_types(message: descriptor_pb2.DescriptorProto):
    for field in message.field:
        if field.type_name:
            yield field.type_name.lstrip(".")
    for nested in message.nested_type:
        yield from referenced_types(nested)


def check_imports(skypilot: descriptor_pb2.FileDescriptorSet, problems: List[str]) -> None:
    for file in skypilot.file:
        for dependency in file.dependency:
            if dependency.startswith(PREFIXES):
                try:
                    POOL.FindFileByName(dependency)
                except KeyError:
                    problems.append(f"{file.name} imports {dependency}, which the package does not register")
        names = [name for message in file.message_type for name in referenced_types(message)]
        names += [
            method_type.lstrip(".")
            for service in file.service
            for method in service.method
            for method_type in (method.input_type, method.output_type)
        ]
        for name in names:
            if name.startswith(("google.longrunning.", "google.rpc.")):
                try:
                    POOL.FindMessageTypeByName(name)
                except KeyError:
                    problems.append(f"{file.name} uses {name}, which the package does not define")


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    google, skypilot = load(argv[1]), load(argv[2])
    problems: List[str] = []
    for file in google.file:
        if file.name.startswith(PREFIXES):
            compare_file(file, problems)
    check_imports(skypilot, problems)
    version = metadata.version("googleapis-common-protos")
    if problems:
        print(f"proto/google is not wire-compatible with googleapis-common-protos {version}:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    checked = ", ".join(file.name for file in google.file)
    print(f"check_google_protos: {checked} match googleapis-common-protos {version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
