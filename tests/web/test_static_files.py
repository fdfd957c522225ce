"""What collectstatic compresses for whitenoise to serve (gzip and Brotli variants)."""

from __future__ import annotations

from django.conf import settings
from whitenoise.compress import Compressor


def test_collectstatic_compresses_assets_but_not_source_maps() -> None:
    compressor = Compressor(extensions=settings.WHITENOISE_SKIP_COMPRESS_EXTENSIONS, quiet=True)
    assert compressor.should_compress("drf_spectacular_sidecar/redoc/redoc.ce78642a8722.js")
    assert compressor.should_compress("admin/css/base.css")
    # Fetched by a browser's developer tools only; half of what there is to compress.
    assert not compressor.should_compress("drf_spectacular_sidecar/redoc/redoc.js.map")
    # whitenoise's own list (already compressed formats) still applies.
    assert not compressor.should_compress("reservo/logo.png")
