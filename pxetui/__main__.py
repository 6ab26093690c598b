from pxetui.cli import main

raise SystemExit(main())
