"""Code the test modules share that holds no tests (pytest collects only tests/test_*.py).

tests/conftest.py holds the shared fixtures; pytest puts tests/ on sys.path, so test modules
import these as `from helpers.recorder import ...`.
"""
