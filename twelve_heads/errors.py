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

    status = 400


class ModelError(HeadsError):
    """A model directory is missing, incomplete or inconsistent."""

    status = 500
