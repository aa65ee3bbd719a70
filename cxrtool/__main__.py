from cxrtool.cli.app import main

main()
