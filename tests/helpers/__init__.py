"""What several test modules share: generated inputs (tiny COCO sets, detectors, weights,
loss problems, run directories), reference implementations and checks.

Test modules import from here, never from one another (tests/test_layering.py checks);
fixtures stay in the conftest.py files.
"""
