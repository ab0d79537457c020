import sys

from nas.train._cli import main

sys.exit(main())
