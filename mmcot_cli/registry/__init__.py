"""Plugins: the hook specifications a backbone plugin implements, the plugin manager that loads the built-in
plugins (registered in code) and third-party ones (the `mmcot` entry-point group), and where vision weights come
from.

Modules: hookspecs (hooks + the dataclasses a plugin registers), manager (loading, lookup, building encoders),
weights (the --weights policy every builder follows), hub (the release's checkpoints and feature files by hub
id, through the Hugging Face cache), environment (what the install is made of, for `mmcot env`, and the one line
for an error a broken install raises).
May import: the ground floor only (errors, io, validate, …). The built-in plugin modules (plugins/, installed as
`mmcot_plugins`) import this package, never the reverse except by name through the manager.
"""
