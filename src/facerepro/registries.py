"""Implementations picked by the name a config gives them.

Nets, loss methods, samplers, verification scorers and protocol kinds each keep one
:class:`Registry`, filled with its ``register`` decorator where the implementation is defined
and read like a dict: ``NETS["sphere20"]``. An unknown name fails with every known name listed.

A registry may also know names before their implementation is imported:
``KINDS.register_module("facerepro.evaluation.occlusion", "occlusion")`` files the name now and
imports the module (whose ``register`` decorators fill it in) on the first lookup of one of its
names, so a job pays for the imports of the implementation it uses, not of every other.
"""

from __future__ import annotations

import importlib
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
        self._modules: dict[str, str] = {}      # name -> the module that registers it

    def register_module(self, module: str, *names: str) -> None:
        """File ``names`` as implemented in ``module``, imported when one of them is looked up
        (or already: a module imported first has registered its names itself)."""
        for name in names:
            done = getattr(self._entries.get(name), "__module__", None) == module
            if name in self._modules or (name in self._entries and not done):
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            self._modules[name] = module

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that files its function or class under ``name``, unchanged."""
        def add(entry: T) -> T:
            lazy = self._modules.get(name)      # filed by register_module: only its module
            if name in self._entries or lazy not in (None, getattr(entry, "__module__", None)):
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            self._entries[name] = entry
            return entry
        return add

    def __getitem__(self, name: str) -> T:
        if name not in self._entries and name in self._modules:
            importlib.import_module(self._modules[name])
            if name not in self._entries:
                raise ImportError(f"{self._modules[name]} registers no {self.kind} {name!r}")
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(self)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._modules     # without importing

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries.keys() | self._modules.keys()))

    def __len__(self) -> int:
        return len(self._entries.keys() | self._modules.keys())
