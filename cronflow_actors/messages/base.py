"""The one base every message and persisted record stands on.

A message is a frozen, keyword-only, tagged msgspec Struct: frozen so it can be shared between
actors without copies, tagged so a union of messages decodes to the right class, keyword-only so
fields can be added later with defaults without breaking callers. Persisted shapes only grow.

The records of an instance's state, its state changes, the element messages, snapshots and
mutations are declared ``gc=False`` (the cyclic collector never walks them): they hold plain
values only (ids, states, numbers, and payloads and outputs normalized to msgpack types before
they are kept), so none can be part of a reference cycle, and every in-flight run has fewer
objects for the collector to walk. A message that can carry a live object (an exception, a
callback) stays tracked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import msgspec
import msgspec.inspect as mi

__all__ = [
    "Message",
    "decoder_for",
    "encode",
    "json_decoder_for",
    "json_encode",
    "plain",
    "plain_copy",
    "storable_attributes",
    "to_schema",
    "without_secrets",
]

T = TypeVar("T")


class Message(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every message. The tag is the class name, stored in the ``type`` field."""


_msgpack_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()

encode = _msgpack_encoder.encode
"""Encode a message or a plain value to msgpack bytes (one encoder, built once)."""

json_encode = _json_encoder.encode
"""Encode a message or a plain value to JSON bytes (one encoder, built once)."""


@cache
def decoder_for(kind: Any) -> msgspec.msgpack.Decoder[Any]:
    """The msgpack decoder for ``kind`` (a Struct class, a union of them, or any msgspec type).

    Built on first use and cached, so decoding never rebuilds a decoder.
    """
    return msgspec.msgpack.Decoder(kind)


@cache
def json_decoder_for(kind: Any) -> msgspec.json.Decoder[Any]:
    """The JSON decoder for ``kind``, built on first use and cached."""
    return msgspec.json.Decoder(kind)


_plain_decoder = msgspec.msgpack.Decoder()
_BYTES = (bytes, bytearray, memoryview)


def plain(value: Any) -> Any:
    """``value`` as it reads back from the store: plain msgpack types, and a deep copy (what
    user code does to it reaches nothing else). Raises ``TypeError`` for values msgpack cannot
    hold. Dates and times are ISO 8601 strings, an aware datetime's with its offset (msgpack
    alone keeps an aware one as a timestamp, read back a ``datetime`` in UTC: its zone lost,
    and no string, where a naive one is: newcomer h38 F1); bytes of any kind are ``bytes``."""
    if value is None or type(value) in (str, float, bool):
        return value
    if type(value) is int:
        if not -(2**63) <= value < 2**64:
            raise OverflowError("can't serialize ints < -2**63 or > 2**64 - 1")
        return value
    builtins = msgspec.to_builtins(value, builtin_types=_BYTES)
    return _plain_decoder.decode(_msgpack_encoder.encode(builtins))


def to_schema(payload: Any, schema: Any) -> Any:
    """``payload`` (plain JSON values) converted to ``schema`` (a payload's declared type), as
    msgspec converts it, but for a whole number written with a fraction (``3846.0``) where an
    ``int`` is declared, which JSON Schema counts as an integer: a client that wrote one, as
    ``/openapi.json`` allows, was refused (hostile h45 F1). Only a value the schema declares an
    int changes (a whole float in an open field stays a float: review h45 F1, F2); ``3846.5``
    is still refused. Raises ``msgspec.ValidationError``."""
    try:
        return msgspec.convert(payload, schema)
    except msgspec.ValidationError as invalid:
        if "got `float`" not in str(invalid):  # (a refusal costs no walk otherwise: F3)
            raise
        try:
            whole = _ints(payload, _info(schema))
        except RecursionError:  # (nested past Python's depth: as msgspec said)
            raise invalid from None
        if whole is payload:
            raise
        return msgspec.convert(whole, schema)


@cache
def _info(schema: Any) -> Any:
    return msgspec.inspect.type_info(schema)


def _ints(value: Any, info: Any) -> Any:
    """``value`` with each whole float that ``info`` declares an int made one, within 64 bits
    (the same object where none is)."""
    kind = type(value)
    if kind is float:
        whole = value.is_integer() and -(2**63) <= value < 2**64 and _is_int(info)
        return int(value) if whole else value
    if kind is list:
        infos = _items(info, len(value))
        if infos is None:
            return value
        items = [_ints(item, item_info) for item, item_info in zip(value, infos, strict=False)]
        changed = any(new is not old for new, old in zip(items, value, strict=False))
        return items + value[len(items) :] if changed else value
    if kind is dict:
        fields = _fields(info, value)
        if fields is None:
            return value
        entries = {key: _ints(item, fields(key)) for key, item in value.items()}
        changed = any(entries[key] is not item for key, item in value.items())
        return entries if changed else value
    return value


def _is_int(info: Any) -> bool:
    """Whether ``info`` takes an int and no float: an int, a literal or an enum of ints (whose
    values /openapi.json lists, 2.0 among them to JSON Schema: retest3 h45 N1)."""
    if isinstance(info, mi.UnionType):  # (int | float takes a float as it is)
        members = info.types
        floats = any(isinstance(member, mi.FloatType) for member in members)
        return not floats and any(_is_int(member) for member in members)
    if isinstance(info, mi.LiteralType):
        return any(type(value) is int for value in info.values)
    if isinstance(info, mi.EnumType):
        return issubclass(info.cls, int)
    return isinstance(info, mi.IntType)


def _items(info: Any, count: int) -> Any:
    """The declared types of a JSON array's items, None for an array not declared."""
    if isinstance(info, mi.UnionType):
        arrays = [member for member in info.types if _items(member, count) is not None]
        return _items(arrays[0], count) if len(arrays) == 1 else None
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return [info.item_type] * count
    if isinstance(info, mi.TupleType):
        return info.item_types
    if isinstance(info, mi.NamedTupleType) or getattr(info, "array_like", False):
        return [field.type for field in info.fields]
    return None


def _tagged(info: Any, value: dict[str, Any]) -> bool:
    """Whether ``value`` carries the tag of ``info``, a tagged struct."""
    field = getattr(info, "tag_field", None)
    return field is not None and value.get(field) == info.tag


def _fields(info: Any, value: dict[str, Any]) -> Callable[[str], Any] | None:
    """The declared type of each key of a JSON object, None for an object not declared."""
    if isinstance(info, mi.UnionType):
        objects = [member for member in info.types if _fields(member, value) is not None]
        tagged = [member for member in objects if _tagged(member, value)]
        chosen = objects if len(objects) == 1 else tagged
        return _fields(chosen[0], value) if len(chosen) == 1 else None
    if isinstance(info, mi.DictType):
        return lambda _key: info.value_type
    if isinstance(info, mi.StructType) and info.array_like:
        return None
    if isinstance(info, mi.StructType | mi.DataclassType | mi.TypedDictType):
        declared = {field.encode_name: field.type for field in info.fields}
        return declared.get
    return None


def storable_attributes(error: BaseException) -> dict[str, Any] | None:
    """An exception's public attributes that can be stored (what survives a restart)."""
    kept = {}
    for name, value in vars(error).items():
        if name.startswith("_"):
            continue
        try:
            kept[name] = plain(value)
        except (TypeError, ValueError, OverflowError):
            continue  # not a plain value: kept in memory only (on the exception itself)
    return kept or None


_SHORTEST_SECRET = 4
"""A secret's value shorter than this is not masked: "***" for every "a" would say more."""


def without_secrets(value: Any, secrets: Mapping[str, Any] | None) -> Any:
    """``value`` (text, or plain data holding text) with each of ``secrets``' values in it
    written ``***``: an error whose message quotes a secret (a URL with its API key) was
    stored, logged and shown to every token holder (hostile h39 F3)."""
    if not secrets or value is None:
        return value
    hidden: list[str] = []
    for name in secrets:
        try:
            secret = secrets[name]
        except Exception:  # a cf.env secret whose variable is gone: nothing to mask
            continue
        text = secret if isinstance(secret, str) else str(secret)
        if len(text) >= _SHORTEST_SECRET:  # as it is, and as a URL quotes it (retest h39 R4)
            hidden.extend({text, quote(text, safe=""), quote_plus(text), quote(text)})
    if not hidden:
        return value
    hidden.sort(key=len, reverse=True)  # (a secret holding another: the longer one first)

    def mask(item: Any) -> Any:
        if isinstance(item, str):
            for text in hidden:
                item = item.replace(text, "***")
            return item
        if isinstance(item, dict):
            return {key: mask(entry) for key, entry in item.items()}
        if isinstance(item, list):
            return [mask(entry) for entry in item]
        return item

    return mask(value)


def plain_copy(value: Any) -> Any:
    """A deep copy of ``value``, which is plain already (read from the state, where ``plain``
    put it): the msgpack round trip alone, without ``plain``'s conversion pass, which costs
    as much again on every copy a handler or a ctx is given (review h38 F5)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    return _plain_decoder.decode(_msgpack_encoder.encode(value))
