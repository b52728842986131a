"""What the test tiers share: a fake clock, `eventually(...)`, the app factory, and compute tasks.

Importable as `support` from every test: pytest's default "prepend" import mode puts `tests/` on
sys.path when it loads tests/conftest.py (tests/ has no __init__.py), the same way the port suites
import `ports.*`. Pool workers import `support.tasks` under that name too (the forkserver copies
sys.path when it starts).
"""
