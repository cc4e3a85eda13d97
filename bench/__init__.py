"""Signalling benchmark: Konsil against a minimal Starlette websocket relay, same machine, same run.

``python -m bench`` (or ``make bench``). Loopback only, bounded, stops by itself.
See docs/performance.md for what is measured and the latest results.
"""
