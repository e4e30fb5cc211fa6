from dashboard.server import main

raise SystemExit(main())
