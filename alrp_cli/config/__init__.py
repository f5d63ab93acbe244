"""The configuration of ``alrp train``, declared once: plain data and the standard library.

- :mod:`.settings`: how a setting is declared (type, choices, bounds, help, parsing);
- :mod:`.presets`: the per-preset defaults (synthetic, COCO) with their official sources;
- :mod:`.training`: :class:`~alrp_cli.config.training.TrainConfig`, its five groups and how
  unset options resolve (preset, then the loss's recipe from :mod:`alrp_cli.registry`).

It sits below the detection package and the CLI, which both read it: every command's
``--help`` builds ``alrp train``'s options from it, so it imports no torch, no torchvision
and nothing of :mod:`alrp_cli.detection`.
"""
