"""``python -m sandbox``: the sandbox CLI without the rest of kpisync."""

from __future__ import annotations

from sandbox.cli import app

if __name__ == "__main__":
    app()
