from rnnattn.cli.main import main

raise SystemExit(main())
