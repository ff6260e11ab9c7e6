"""inhouse app: the composition root above the components (the `inhouse` console script, the config reference).

The only package that may import every component; no component and nothing in `core` imports it.
"""
