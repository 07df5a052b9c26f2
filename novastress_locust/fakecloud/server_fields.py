"""The checks Nova's JSON schemas make of a server's own fields, in one place: a server's name,
description, hostname, access addresses and disk config, as a create, an update
(`PUT /servers/{id}`) or a rebuild sends them.

    fields = checked_update(spec, minor)     # the fields to set, or ApiError(400) as Nova words it
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Any

from .service import ApiError

NAME_RULE = ("An invalid 'name' value was provided. The name must be: printable characters. "
             "Can not start or end with whitespace.")
HOSTNAME = re.compile(r"^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$")    # 2.90 to 2.93
FQDN = re.compile(r"^[a-zA-Z0-9-._]*$")                              # from 2.94


def invalid(field: str, value: Any, message: str) -> ApiError:
    return ApiError(400, f"Invalid input for field/attribute {field}. Value: {value}. {message}")


def not_allowed(keys: list[str]) -> str:
    """The text of Nova's schema for keys `additionalProperties: false` does not take (sorted by the caller)."""
    verb = "was" if len(keys) == 1 else "were"
    return f"Additional properties are not allowed ({', '.join(map(repr, keys))} {verb} unexpected)"


def checked_name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str):
        raise invalid(field, value, f"{value!r} is not of type 'string'")
    if not value:
        raise invalid(field, value, f"{value!r} should be non-empty")
    if len(value) > 255:
        raise invalid(field, value, f"{value!r} is too long")
    if value != value.strip() or not value.isprintable():
        raise invalid(field, value, NAME_RULE)
    return value


def checked_non_negative(value: Any, field: str) -> int:
    """Nova's non_negative_integer: an integer, or a string of digits, of at least 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (
            isinstance(value, float) and not value.is_integer()):
        raise invalid(field, value, f"{value!r} is not of type 'integer', 'string'")
    if isinstance(value, str) and not re.match(r"^[0-9]*$", value):
        raise invalid(field, value, f"{value!r} does not match '^[0-9]*$'")
    if not isinstance(value, str) and value < 0:
        raise invalid(field, value, f"{value!r} is less than the minimum of 0")
    if value == "":
        raise invalid(field, value, f"{value!r} should be non-empty")
    return int(value)


def checked_common(spec: dict) -> dict[str, Any]:
    """accessIPv4, accessIPv6 and OS-DCF:diskConfig of a create, update or rebuild body."""
    fields: dict[str, Any] = {}
    for key, version in (("accessIPv4", 4), ("accessIPv6", 6)):
        if key in spec:
            value = spec[key]
            try:
                valid = isinstance(value, str) and ipaddress.ip_address(value).version == version
            except ValueError:
                valid = False
            if not valid:
                raise invalid(key, value, f"{value!r} is not a 'ipv{version}'")
            # Nova keeps it as an IP address object: shown in its canonical form ("::babe:dc0c:1602")
            fields[key] = str(ipaddress.ip_address(value))
    if "OS-DCF:diskConfig" in spec:
        value = spec["OS-DCF:diskConfig"]
        if value not in ("AUTO", "MANUAL"):
            raise invalid("OS-DCF:diskConfig", value, f"{value!r} is not one of ['AUTO', 'MANUAL']")
        fields["OS-DCF:diskConfig"] = value
    return fields


def checked_counts(spec: dict) -> tuple[int, int]:
    """(min_count, max_count) of a create: whole numbers of at least 1, min not above max."""
    counts = []
    for key, default in (("min_count", 1), ("max_count", None)):
        value = spec.get(key, default if default is not None else counts[0])
        number = value if isinstance(value, int) and not isinstance(value, bool) else (
            int(value) if isinstance(value, str) and value.isdigit() else None)
        if number is None or number < 1:
            raise invalid(key, value, f"{value!r} is not valid under any of the given schemas")
        counts.append(number)
    if counts[0] > counts[1]:
        raise ApiError(400, "min_count must be <= max_count")
    return counts[0], counts[1]


def checked_personality(spec: dict, minor: int, limits: dict[str, int]) -> None:
    """Injected files (before 2.57): paths and base64 contents, within the injected_file quotas (403)."""
    if "personality" not in spec:
        return
    files = spec["personality"]
    if minor >= 57:
        raise invalid("server", spec, "Additional properties are not allowed ('personality' was unexpected)")
    if not isinstance(files, list):
        raise invalid("personality", files, f"{files!r} is not of type 'array'")
    for position, item in enumerate(files):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise invalid(f"personality/{position}", item, "'path' is a required property")
        try:
            content = base64.b64decode(str(item.get("contents", "")), validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"personality/{position}/contents", item.get("contents"),
                          f"{item.get('contents')!r} is not a 'base64'") from None
        if len(item["path"]) > limits["injected_file_path_bytes"] >= 0:
            raise ApiError(403, f"Personality file path exceeds maximum {limits['injected_file_path_bytes']}")
        if len(content) > limits["injected_file_content_bytes"] >= 0:
            raise ApiError(403, f"Personality file content exceeds maximum {limits['injected_file_content_bytes']}")
    if len(files) > limits["injected_files"] >= 0:
        raise ApiError(403, "Personality file limit exceeded")


def checked_update(spec: dict, minor: int) -> dict[str, Any]:
    """The fields of a PUT /servers/{id} body, checked as Nova's update schema of that microversion."""
    allowed = {"name", "OS-DCF:diskConfig", "accessIPv4", "accessIPv6"}
    allowed |= {"description"} if minor >= 19 else set()
    allowed |= {"hostname"} if minor >= 90 else set()
    allowed |= {"pinned_availability_zone"} if minor >= 104 else set()
    unexpected = sorted(set(spec) - allowed)
    if unexpected:
        raise invalid("server", spec, not_allowed(unexpected))
    fields = checked_common(spec)
    if "name" in spec:
        fields["name"] = checked_name(spec["name"])
    if "description" in spec:
        value = spec["description"]
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise invalid("description", value, f"{value!r} is too long" if isinstance(value, str)
                          else f"{value!r} is not of type 'string', 'null'")
        fields["description"] = value
    if "hostname" in spec:
        value, pattern = spec["hostname"], FQDN if minor >= 94 else HOSTNAME
        longest = 255 if minor >= 94 else 63
        if not isinstance(value, str) or not pattern.match(value) or not 1 <= len(value) <= longest:
            raise invalid("hostname", value, f"{value!r} does not match '{pattern.pattern}'")
        fields["hostname"] = value
    if "pinned_availability_zone" in spec:
        value = spec["pinned_availability_zone"]
        if value is not None:
            checked_name(value, "pinned_availability_zone")
        fields["pinned_availability_zone"] = value
    return fields
