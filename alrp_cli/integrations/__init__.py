"""Drop-in aLRP / AP Loss heads for other libraries' detectors.

``alrp_cli.integrations.torchvision`` holds heads for torchvision's RetinaNet and FCOS; it is
the only module of alrp that knows torchvision's detector classes. Nothing here is imported
eagerly, so ``import alrp_cli.integrations`` costs nothing.
"""
