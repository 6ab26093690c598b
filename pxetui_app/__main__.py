"""`python -m pxetui_app`: the same as the `pxetui` console script."""

from pxetui_app import main

raise SystemExit(main())
