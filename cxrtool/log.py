"""Messages for the user on stderr, so stdout carries only results (SPEC §5)."""

from __future__ import annotations

import sys


def info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def a(word: str) -> str:
    """The word with its indefinite article: "an autoencoder", "a joint"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
