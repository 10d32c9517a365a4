from traitscope.cli.app import main

main()
