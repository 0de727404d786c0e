"""PDF rendering 生成PDF: the one CJK font every document embeds.

reportlab embeds (a subset of) a TrueType font; it cannot use PostScript (CFF) outlines, and
Debian's `fonts-noto-cjk` ships Noto Sans/Serif CJK as OpenType/CFF collections, which
reportlab refuses ("postscript outlines are not supported"). So the font searched for first is
a TrueType CJK face Debian packages: WenQuanYi Zen Hei (`fonts-wqy-zenhei`, installed by
`make setup` and `.ci/run`), then AR PL UMing (`fonts-arphic-uming`); Noto CJK is still tried
last in case a TrueType build of it is installed. `CJK_FONT_FILE` (config) names another file.

No fallback to a non-embedded font (reportlab's STSong-Light CID font would render only where
the reader has Adobe's Asian font pack): a receipt that prints as empty boxes is worse than a
clear refusal, so without a usable font `cjk_font()` raises `FontUnavailable` (503
`pdf_font_unavailable`, naming the package to install).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from api.errors import DomainError

log = logging.getLogger(__name__)

FONT_NAME = "SSI-CJK"
# (path, subfont index of a .ttc collection)
CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
)
_lock = threading.Lock()
_registered: str | None = None


class FontUnavailable(DomainError):
    """No embeddable CJK font is installed: PDFs cannot be written."""

    status = 503
    code = "pdf_font_unavailable"
    message = "服务器缺少中文字体（fonts-wqy-zenhei），暂时无法生成PDF"


def _try(path: str, index: int) -> bool:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    if not Path(path).is_file():
        return False
    try:
        pdfmetrics.registerFont(TTFont(FONT_NAME, path, subfontIndex=index))
    except (TTFError, OSError) as exc:
        log.warning("CJK font not usable by reportlab", extra={"path": path, "error": str(exc)})
        return False
    return True


def cjk_font(configured: str = "") -> str:
    """The registered reportlab name of an embeddable CJK font (registered once per process)."""
    global _registered
    with _lock:
        if _registered is not None:
            return _registered
        candidates = ((configured, 0),) if configured else CANDIDATES
        for path, index in candidates:
            if _try(path, index):
                _registered = FONT_NAME
                return FONT_NAME
    raise FontUnavailable()
