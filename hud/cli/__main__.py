from hud.cli.main import main

raise SystemExit(main())
