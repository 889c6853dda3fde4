"""Erlang/OTP-style fault tolerance for anyio, with a reference-counted starter service."""

import logging as _logging

# Quiet by default: the application decides where the library's log records go.
_logging.getLogger("refcount_starter").addHandler(_logging.NullHandler())
