"""``c.TFServe.*`` traits for the server options the extension exposes, derived from their one declaration.

:func:`~jupyter_tfserve.core.options.jupyter_options` says which options the
extension shows, under which trait names and with which defaults and help;
this module only makes them a base class of the extension's app, so a trait
can never drift from the option it sets.
"""

from __future__ import annotations

from ..core.options import configurable_base, jupyter_options


def _option_values(self) -> dict:
    """The options these traits set, by ServerOptions field name."""
    return {spec.option: getattr(self, spec.name) for spec in jupyter_options()}


ServerOptionTraits = configurable_base(
    "ServerOptionTraits",
    jupyter_options(),
    __name__,
    __doc__="A base for the extension's app: one configurable trait per exposed server option.",
    option_values=_option_values,
)
