from local_scheduler.server import main

raise SystemExit(main())
