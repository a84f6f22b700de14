"""Imported first by every stage script: signals handled, and the cheap checks made, before the heavy imports.

A stage's imports (pandas, torch, MLflow) take seconds; importing this module before them installs
:func:`psychovis.pipeline.signals.install`, so an interruption during the imports ends the stage in
one line, and the stage dies with the ``dvc repro`` that launched it. Then
:func:`psychovis.pipeline.preflight.check_before_imports` checks the stage's params and tracking URI:
a bad value is refused in about a second, before torch is imported.
"""

from psychovis.pipeline import signals

signals.install()

# isort: split

from psychovis.pipeline import preflight  # noqa: E402  (after the handlers: reading the params can take a moment)

preflight.check_before_imports()
