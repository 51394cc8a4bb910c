"""The one exception type that reaches users as a one-line message."""


class EdnError(Exception):
    """A problem with the user's input, reported without a traceback.

    The message must name the input (a path, a URL, a config key) and say what is
    wrong with it, in one line. Anything else that goes wrong is a bug and keeps
    its traceback.
    """
