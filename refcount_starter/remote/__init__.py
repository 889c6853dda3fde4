"""Nodes on several machines: codec, remote table (closures), sessions, transport."""
