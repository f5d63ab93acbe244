"""Plain names of the built-in synthetic shapes dataset (``alrp data synth``).

Its class names, apart from their drawing (:mod:`alrp_cli.detection.data.shapes`), and the
name of the file that marks a folder as one of its sets, apart from the writer
(:mod:`alrp_cli.detection.data.synthetic`): the command line shows the names in
``alrp data synth --help`` and the training configuration recognises a synthetic folder
without importing the detection package, numpy or PIL.
"""

SYNTH_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring")
"""Names of the synthetic classes, in category-id order (id = position + 1)."""

MARKER = "alrp-synth.json"
"""The file ``alrp data synth`` writes into every set it makes (its parameters)."""
