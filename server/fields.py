"""An endpoint's request fields as one table, parsed into one frozen options object before any work.

A `Field` is a name, a parser, a default and a help line. `Fields(*table)` reads a request — a JSON object by
POST, or the query string by GET — refuses fields it does not know, and runs each field's parser in table order.
The result is a frozen dataclass with one attribute per field; every parser returns a hashable value (a tuple,
not a list), so the options object is itself the cache key and a field added later cannot be left out of it.

What only the model can tell (a layer in its range) is a field's `check`, run by `Fields.check(options, engine)`
once the model is known and before anything is computed.

Adding a field is one row: `Field("predict", boolean, False, "add the next-token prediction",
from_query=query_boolean)`, with a parser of its own where none of these fits. A parser takes the Field (for
its name) and the value as it arrived (the default when absent), and raises InputError saying what to send.
"""

from dataclasses import dataclass, make_dataclass
from typing import Any, Callable
from urllib.parse import unquote_to_bytes

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from twelve_heads.errors import InputError, type_name

EXAMPLE = '{"text": "Hello world"}'  # what the body errors show a client to send, unless its table says otherwise
SHOWN_CHARS = 40  # of a client's unknown field name or bad query value, quoted back in the message


@dataclass(frozen=True)
class Field:
    name: str
    parse: Callable[["Field", Any], Any]  # (field, JSON value or default) -> option value, or InputError
    default: Any
    help: str
    from_query: Callable[["Field", str], Any] = lambda field, text: text  # a query string value as a JSON one
    check: Callable[["Field", Any, Any], None] | None = None  # (field, option value, engine): InputError or None


class Fields:
    """One endpoint's table of fields; `parse()` turns the current request into its frozen options object."""

    def __init__(self, *fields: Field, example: str = EXAMPLE):
        self.fields = fields
        self.example = example  # a request that works, shown when the body is not one
        self.names = tuple(field.name for field in fields)
        self.options_type = make_dataclass("Options", [(field.name, Any) for field in fields], frozen=True)

    def parse(self):
        payload = request_payload(self.fields, self.example)
        unknown = sorted(set(payload) - set(self.names))
        if unknown:
            shown = unknown[0] if len(unknown[0]) <= SHOWN_CHARS else unknown[0][:SHOWN_CHARS] + "…"
            raise InputError(f"unknown field {shown!r}; the fields are: {', '.join(self.names)}")
        return self.options_type(**{field.name: field.parse(field, payload.get(field.name, field.default))
                                    for field in self.fields})

    def check(self, options, engine) -> None:
        """The checks that need the model, before any computation."""
        for field in self.fields:
            if field.check is not None:
                field.check(field, getattr(options, field.name), engine)


def request_payload(fields: tuple[Field, ...], example: str = EXAMPLE) -> dict:
    """The request as a dict of JSON values: the POSTed object, or the query string's values converted by each
    field's `from_query` (a field the table does not know stays a string, to be refused as unknown)."""
    if request.method != "POST":
        try:
            unquote_to_bytes(request.query_string.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("the query string is not valid UTF-8; percent-encode the text as UTF-8") from None
        by_name = {field.name: field for field in fields}
        return {key: by_name[key].from_query(by_name[key], value) if key in by_name else value
                for key, value in ((key, request.args.get(key)) for key in request.args)}
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and len(request.get_data(cache=True)) >= limit:
        raise RequestEntityTooLarge()  # a chunked body has no length to refuse up front; Werkzeug cuts it here
    try:
        payload = request.get_json(silent=True)
    except RecursionError:
        raise InputError(f"the request body nests too deeply; send a flat object like {example}") from None
    if payload is None:
        raise InputError(f"the request body must be JSON (UTF-8) like {example}, "
                         "sent with Content-Type: application/json")
    if not isinstance(payload, dict):
        raise InputError(f"the request body must be a JSON object like {example}, not {type_name(payload)}")
    return payload


# --- parsers: (field, value) -> the option's value ---------------------------------------------------------------

def sentence(field: Field, value) -> str:
    """A required string; whether it is a sentence the model can read is the engine's to say (Engine.tokenize)."""
    if value is None:
        raise InputError(f'"{field.name}" is required: {field.help}')
    if not isinstance(value, str):
        raise InputError.wrong_type(field.name, "a string", value)
    return value


def model_name(field: Field, value) -> str | None:
    """None (the default model) or a name, looked up among the exported models by ModelRegistry.get."""
    if value is not None and not isinstance(value, str):
        raise InputError.wrong_type(field.name, "a string (a name from /api/models)", value)
    return value


def boolean(field: Field, value) -> bool:
    if not isinstance(value, bool):
        raise InputError.wrong_type(field.name, "true or false", value)
    return value


def optional_whole_number(field: Field, value) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise InputError.wrong_type(field.name, "a whole number", value)
    return value


def one_of(*choices: str) -> Callable[[Field, Any], str]:
    def parse(field: Field, value) -> str:
        if value not in choices:
            raise InputError(f'"{field.name}" must be one of {", ".join(choices)}')
        return value
    return parse


# --- from_query: a query string value -> the JSON value it stands for ---------------------------------------------

def query_boolean(field: Field, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f'"{field.name}" must be true or false, not {text[:SHOWN_CHARS]!r}')


def query_whole_number(field: Field, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f'"{field.name}" must be a whole number, not {text[:SHOWN_CHARS]!r}') from None


# --- checks: (field, option value, engine), once the model is known -----------------------------------------------

def layer_of_model(field: Field, layer: int | None, engine) -> None:
    if layer is not None and not 0 <= layer < engine.n_layer:
        raise InputError(f"{field.name} must be between 0 and {engine.n_layer - 1} for model {engine.name!r}, "
                         f"not {layer}")
