"""A package selected by the trace tests (tests/python/test_trace_capture.py):
code with known control flow, in flow.py."""
