"""Built-in mmcot plugins (imported as `mmcot_plugins`), one module per backbone family.

They load through the `mmcot` entry-point group exactly like third-party plugins.
"""
