"""The one error type the user sees, and what kind of failure it is.

Everything that can go wrong because of what a user sent or how a model directory looks raises
`HeadsError` (or a subclass) with a message that says what happened and what to do. The Flask app turns
it into `{"error": message}` with `status`; nothing else reaches the browser.
"""


class HeadsError(Exception):
    """A failure the user can act on. `str(err)` is the whole message; `status` is its HTTP status."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class InputError(HeadsError):
    """The request (text, options) is not something we can compute."""

    @classmethod
    def wrong_type(cls, name: str, expected: str, value) -> "InputError":
        """The one wording for a value of the wrong type: '"layer" must be a whole number, not a string'."""
        return cls(f'"{name}" must be {expected}, not {type_name(value)}')


def type_name(value) -> str:
    """What `value` is, in the words of JSON (where the API's values come from): "a number", "null"."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


class ModelError(HeadsError):
    """A model directory is missing, incomplete or inconsistent: the server cannot serve that model now."""

    status = 503
