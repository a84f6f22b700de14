"""ModelFest: human detection thresholds as ground truth for every distance of the project.

- :mod:`~psychovis.modelfest.data`: the per-observer thresholds (sha256-pinned data files of ``stimupy``).
- :mod:`~psychovis.modelfest.stimuli`: the 43 stimuli rendered from their published definitions at any px/deg.
- :mod:`~psychovis.modelfest.observers`: classical and deep observers, thresholds, criterion fits.
- :mod:`~psychovis.modelfest.scores`: RMS dB with bootstrap CIs, the human band and noise floors.
"""
