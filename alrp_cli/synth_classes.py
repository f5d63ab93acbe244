"""The class names of the built-in synthetic shapes dataset (``alrp data synth``).

Plain names, apart from their drawing (:mod:`alrp_cli.detection.data.shapes`), so that the
command line shows them in ``alrp data synth --help`` without importing the detection
package, numpy or PIL.
"""

SYNTH_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring")
"""Names of the synthetic classes, in category-id order (id = position + 1)."""
