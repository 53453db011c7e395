"""Built-in mmcot plugins (imported as `mmcot_plugins`), one module per backbone family.

mmcot_cli.registry.manager registers them in code (DEFAULT_PLUGINS); they use the same hooks as third-party
plugins, which load through the `mmcot` entry-point group.
"""
