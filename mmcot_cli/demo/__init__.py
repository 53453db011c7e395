"""The offline demo: a synthetic benchmark in ScienceQA's layout, the demo run and the ablation recipe.

Modules: synthetic (the benchmark generator), run (`mmcot demo`), ablation (`mmcot demo --ablation`),
previous (a rerun replaces the earlier output only once it has finished), settings (DemoSettings: every `mmcot
demo` option), numerics (the portable CPU kernels and fixed thread count that make its numbers the same everywhere).
May import: everything below the CLI.
"""
