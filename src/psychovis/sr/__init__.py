"""The 4x single-image super-resolution task that the psychovisual loss is trained and judged on.

Modules: ``data`` (the bundled/user images, train/test split, crops, bicubic resampling),
``model`` (an EDSR-style network), ``training`` (one loss, seeded and resumable),
``evaluation`` (super-resolve and score the held-out images), ``metrics`` (PSNR/SSIM on luma,
error per frequency band) and ``figures``.
"""
