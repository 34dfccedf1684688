from recsys_core.cli import main

raise SystemExit(main())
