from nas.finetune._cli import main

raise SystemExit(main())
