from .cli_plain import main

main()
