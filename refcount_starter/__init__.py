"""Erlang/OTP-style fault tolerance for anyio, with a reference-counted starter service."""
