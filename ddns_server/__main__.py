from ddns_server.cli import main

raise SystemExit(main())
