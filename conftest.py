"""Settings every test run needs before any test module imports a library.

litellm downloads its model price list at import unless LITELLM_LOCAL_MODEL_COST_MAP is set,
and no test may reach the internet, so it is set here, before collection imports litellm.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
