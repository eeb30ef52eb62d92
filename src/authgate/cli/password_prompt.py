"""Where `users add` and `users set-password` read the new password: the terminal, or stdin.

Without a terminal (a script, CI, `docker exec` without -t) `getpass` cannot hide what is typed
and falls back to stdin, ending in a traceback when stdin is empty. So the password comes from
the terminal when there is one and from stdin only when asked (`--password-stdin`, as in
`docker login`); with neither the command stops at once, before anything is changed, saying so.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys


def _has_terminal() -> bool:
    """getpass asks on /dev/tty, else on stdin when that is a terminal."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return sys.stdin.isatty()
    return True


def no_password_source(args: argparse.Namespace) -> str | None:
    """Why the password cannot be read (no terminal, no --password-stdin), or None."""
    if args.password_stdin or _has_terminal():
        return None
    return (
        f"authgate: no terminal to ask the password of {args.name} on; give it on stdin with "
        f"--password-stdin: printf '%s\\n' \"$PASSWORD\" | authgate users {args.users_command} "
        f"{args.name} --password-stdin"
    )


def read_password(args: argparse.Namespace) -> str:
    """The new password, checked against the password rules; SystemExit with one line if not."""
    from authgate.oauth.passwords import check_new_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Repeat password: ")
        except EOFError:
            raise SystemExit("authgate: no password given") from None
        if again != password:
            raise SystemExit("authgate: passwords differ")
    try:
        check_new_password(password)
    except ValueError as exc:
        raise SystemExit(f"authgate: {exc}") from None
    return password
