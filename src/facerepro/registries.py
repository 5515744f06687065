"""Implementations picked by the name a config gives them.

Nets, loss methods, samplers, verification scorers and protocol kinds each keep one
:class:`Registry`, filled with its ``register`` decorator where the implementation is defined
and read like a dict: ``NETS["sphere20"]``. An unknown name fails with every known name listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no implementation is registered under: a missing key of the registry, and a bad
    value of the config that gave it, so callers expecting either error catch it."""

    def __str__(self) -> str:
        # KeyError's own str() would print the message in quotes.
        return str(self.args[0])


class Registry(Mapping[str, T]):
    """Implementations by name, iterated in sorted name order; ``kind`` names them in errors
    (``"sampler"``: "unknown sampler 'x'; known: ...")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that files its function or class under ``name``, unchanged."""
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            self._entries[name] = entry
            return entry
        return add

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(self)}")
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
