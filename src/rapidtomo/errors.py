"""Errors that the command line reports as one line (exit status 2) instead of a traceback."""


class UserError(Exception):
    """Bad input from the user: a file, a field or a setting that is wrong.

    The message names the file and the field and says what is wrong, in one line.
    """
