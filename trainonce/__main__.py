from trainonce.cli.main import main

raise SystemExit(main())
