import sys

from affectnetplus_hf.cli import main

sys.exit(main())
