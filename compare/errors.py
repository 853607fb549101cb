"""User-facing errors: a mistake the user can fix ends in one line and exit code 2.

Below every stage.
"""


class UserError(Exception):
    """A problem with the user's input or environment, with the fix in the message.

    The CLI prints the message as one line and exits with code 2; a traceback is shown
    only with `--debug`.
    """

    exit_code = 2
