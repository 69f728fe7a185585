"""`python -m inference_study.dag`: the same command as `inference-study dag`."""

import sys

from inference_study.dag.cli import main

sys.exit(main())
