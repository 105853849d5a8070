"""`python -m flan_trainer`: see flan_trainer.main."""

import sys

from flan_trainer.main import main

sys.exit(main())
