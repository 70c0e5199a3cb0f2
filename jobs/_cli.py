"""What every entry point shares: the default experiment and the exit code of a usage error."""
from __future__ import annotations

from cluster.connect import CODE_ROOT

DEFAULT_CONFIG = CODE_ROOT / "configs" / "quickstart.yaml"
USAGE_ERROR = 2  # a bad config, argument or data set: nothing was started
