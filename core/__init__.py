"""inhouse core: shared, light pieces (config, errors, languages, FIM formats, the completion client).

Never imports torch; every component may import it, it imports no component.
"""

from __future__ import annotations

__version__ = "0.1.0"
